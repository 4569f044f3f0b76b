"""The `podbrief` command: the top floor. It finds the services by name (`serve`, each service's own commands)
and runs the whole pipeline (`run`, from `podbrief_run`); nothing below it imports it."""
