"""Content types a partner might send to make a copied file run as a page on the bridge's origin.

Browsers take the last type of a comma list, whatever their case, with spaces or tabs around the
comma; SVG and HTML are documents that run script. Shared by the unit and Chromium tests."""

HOSTILE_TYPES = [
    "image/png,text/html",
    "text/html",
    "TEXT/HTML",
    "image/svg+xml",
    "text/html; charset=utf-8",
    "application/pdf, text/html",
    "image/png ,\ttext/html",
    "image/png\t, text/html",
    "text/plain,text/html",
    "application/xhtml+xml",
    "text/xml",
]
# What it would do if it ran: mark the page (the Chromium test looks for the mark).
SCRIPT_PAGE = (
    b"<!doctype html><html><head><title>media</title></head><body>"
    b"<script>document.title = 'PWNED'; window.pwned = true;</script>"
    b"<svg xmlns='http://www.w3.org/2000/svg' onload=\"document.title='PWNED'\"></svg>"
    b"</body></html>"
)
