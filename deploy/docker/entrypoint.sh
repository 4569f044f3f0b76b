#!/bin/sh
# No arguments: run the service named by $SERVICE; otherwise pass the arguments to the podbrief CLI.
set -eu
if [ "$#" -eq 0 ]; then
    exec podbrief serve "${SERVICE:?set SERVICE to ingest, transcription, extraction, clustering or delivery}"
fi
exec podbrief "$@"
