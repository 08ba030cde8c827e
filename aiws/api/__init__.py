"""HTTP API (FastAPI): health, studies, jobs, sends, configuration, plugins, metrics, web page."""
