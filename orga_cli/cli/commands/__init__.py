"""The commands of `orga`, one module each; `cli/app.py` registers them."""
