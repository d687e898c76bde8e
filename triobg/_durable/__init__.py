# Durable background tasks: stored before the response, run after it, recovered after a crash.
#
# A room of its own (see STYLE.md, "Growing the house"), one job per module:
#
#   _status.py   the state machine, written down once (an enum and its diagram)
#   _store.py    the store contract every backend implements, and the records it speaks in
#   _memory.py   an in-memory store: the fast test double for everything above the store
#   _sqlite.py   the embedded store on ``sqlite3`` (WAL, synchronous=FULL, group commit)
#   _codec.py    arguments and results as JSON, through cattrs
#   _task.py     ``@app.task``: ``DurableTask``, ``TaskResult``, ``TaskNotFound``
#   _worker.py   claims under a lease, heartbeats, runs, retries, drains at shutdown
#   _tasks.py    ``app.tasks``: the app's facade, the pipeline step and the lifespan hook
#
# The pipeline (``_pipeline.py``) gains exactly one step: "store the durable tasks, then send".
