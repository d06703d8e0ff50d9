"""FastAPI job service: stores experiment jobs, runs them through the harness on Ray, serves a
comparison dashboard. The API process only does bookkeeping; training runs in Ray jobs."""
