from podbrief.storage.db import run_env
from podbrief_extraction.models import Base

run_env(Base.metadata)
