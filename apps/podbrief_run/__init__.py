"""`podbrief run`: the whole pipeline in one process on this machine, and the bundled demo feeds it runs on by
default. It sits above the services and drives their real code; only the command line imports it."""
