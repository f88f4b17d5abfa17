"""The worker process (``python -m runner.worker FD``): the only package that imports wasmtime.

Started fresh by runner/pool.py, never imported by the Gunicorn process. It keeps
compiled components loaded, builds the host interfaces once (host/) and runs each
job in a fresh Store.
"""
