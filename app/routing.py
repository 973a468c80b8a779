"""URL parts that need more than Werkzeug's converters."""

from werkzeug.routing import PathConverter


class ServiceConverter(PathConverter):
    """A service name in a URL: any text, slashes included, even a leading one
    ("/usr/sbin/cron", as a syslog tag can name a program). The path converter refuses a
    leading slash, so such a service's pages were not found."""

    regex = ".+?"
    part_isolating = False  # spans several segments of the path


def init_routing(app) -> None:
    """Register the converter as <service:...>."""
    app.url_map.converters["service"] = ServiceConverter
