from pap.cli import app

app()
