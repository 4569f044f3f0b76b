from podbrief.storage.db import run_env
from podbrief_transcription.models import Base

run_env(Base.metadata)
