"""Environment variables the launcher sets for each process it starts."""

ENV_COORDINATOR = "DATARAX_COORDINATOR"
ENV_NUM_PROCESSES = "DATARAX_NUM_PROCESSES"
ENV_PROCESS_ID = "DATARAX_PROCESS_ID"
