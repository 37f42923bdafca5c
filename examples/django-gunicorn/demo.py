# A small Django API whose views do what real API views do, for the sync-versus-gevent experiment
# (run-matrix): one waits on I/O, one burns a little CPU. One module, no database, no project
# scaffolding: `gunicorn demo:application` serves it (run with Debian's /usr/bin/python3, which
# has python3-django, gunicorn and python3-gevent).
#
#   GET /api/orders/   waits 100 ms on a blocking call, standing for a database query or another
#                      service; a sync worker is held for the whole wait, a gevent worker is not
#                      (gunicorn's gevent worker patches the standard library, time.sleep included)
#   GET /api/price/    about 5 ms of CPU (SHA-256 rounds), the same under either worker class
#   GET /api/health/   answers at once (the script waits on it)
import hashlib
import json
import os
import time

import django
from django.conf import settings
from django.core.wsgi import get_wsgi_application
from django.http import HttpResponse
from django.urls import path

IO_WAIT_S = float(os.environ.get("DEMO_IO_WAIT_S", "0.1"))
CPU_ROUNDS = int(os.environ.get("DEMO_CPU_ROUNDS", "20000"))

settings.configure(
    DEBUG=False,
    SECRET_KEY="stampede-demo-not-secret",
    ALLOWED_HOSTS=["127.0.0.1", "localhost", "[::1]"],
    ROOT_URLCONF=__name__,
    MIDDLEWARE=[],
    INSTALLED_APPS=[],
    USE_TZ=True,
)


def respond(body):
    return HttpResponse(json.dumps(body), content_type="application/json")


def orders(request):
    time.sleep(IO_WAIT_S)  # the "database"
    return respond({"orders": [{"id": i, "total": 10 * i} for i in range(5)]})


def price(request):
    digest = b"stampede"
    for _ in range(CPU_ROUNDS):
        digest = hashlib.sha256(digest).digest()
    return respond({"price": int.from_bytes(digest[:2], "big") / 100})


def health(request):
    return respond({"ok": True, "pid": os.getpid()})


urlpatterns = [
    path("api/orders/", orders),
    path("api/price/", price),
    path("api/health/", health),
]

django.setup()
application = get_wsgi_application()
