"""The peers ``bench/run.py`` measures asgi_oauth against, as they ship."""
