"""Local Apache Beam runners the project can start and test: a Flink session cluster (JobManager +
TaskManagers as separate JVMs) and a Spark standalone cluster, each with Beam's job server, all
built from Maven Central artifacts with Maven itself and cached; plus the boot command that runs
Python SDK workers as plain processes (Beam's PROCESS environment) without Docker.

`splade-es runner start flink|spark`, `runner status`, `runner stop`; or from Python
:func:`splade_es_workshop.runners.flink.start` / :func:`splade_es_workshop.runners.spark.start`.
"""
