from podbrief.storage.db import run_env
from podbrief_ingest.models import Base

run_env(Base.metadata)
