"""The report: a data model (model.py) rendered to JSON, HTML and PDF (render.py)."""
