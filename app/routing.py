"""URL parts that need more than Werkzeug's converters."""

from urllib.parse import quote

from werkzeug.routing import PathConverter


class ServiceConverter(PathConverter):
    """A service name in a URL: any text, slashes included, even a leading one
    ("/usr/sbin/cron", as a syslog tag can name a program). The path converter refuses a
    leading slash, so such a service's pages were not found."""

    regex = ".+?"
    part_isolating = False  # spans several segments of the path

    def to_url(self, value: str) -> str:
        """The name as one segment of the path, slashes encoded: a browser resolves the dot
        segments of "../../api/logs" (a name any sender can choose) into another URL, which
        htmx would then load into the page. Servers decode %2F before routing."""
        return quote(value, safe="")


def init_routing(app) -> None:
    """Register the converter as <service:...>."""
    app.url_map.converters["service"] = ServiceConverter
