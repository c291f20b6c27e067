"""Development only: the partner simulators and the /sandbox page. Production code (app/,
workers/) never imports this package, except app/__init__.py mounting the page when sandbox
mode is on."""
