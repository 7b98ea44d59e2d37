"""Task forms: a task's JSON Schema and UI schema read into fields, typed values and messages.

`fields` and `values` are Flask-free; `messages` and `render` turn them into translated HTML.
"""
