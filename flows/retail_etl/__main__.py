"""`python -m retail_etl` is the same as the `retail-etl` command."""

from .cli import app

if __name__ == "__main__":
    app()
