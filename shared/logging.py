"""structlog configuration: JSON lines for machines, console for a terminal.

Every line carries the service name; handlers bind `event_id`, `correlation_id`
and `subject` through contextvars, so a message's lines can be followed across
services. Personal contact details are never logged.
"""

from __future__ import annotations

import logging
import sys


def configure_logging(*, service: str, fmt: str = "auto", level: str = "info") -> None:
    """structlog's lines, and the libraries' own (stdlib logging: SQLAlchemy's pool, asyncio, aiohttp,
    and Python's warnings, at WARNING and above) rendered alike, one JSON object a line: a library's traceback is a line's
    `exception`, not loose text between the lines."""
    import structlog

    if fmt == "auto":
        fmt = "console" if sys.stderr.isatty() else "json"
    renderer: structlog.typing.Processor
    if fmt == "json":
        renderer = structlog.processors.JSONRenderer()
    else:
        renderer = structlog.dev.ConsoleRenderer(colors=False)
    stamped: list[structlog.typing.Processor] = [
        structlog.contextvars.merge_contextvars,
        structlog.processors.add_log_level,
        structlog.processors.TimeStamper(fmt="iso", utc=True),
    ]
    structlog.configure(
        processors=[
            *stamped,
            structlog.processors.StackInfoRenderer(),
            structlog.processors.format_exc_info,
            renderer,
        ],
        wrapper_class=structlog.make_filtering_bound_logger(logging.getLevelNamesMapping()[level.upper()]),
        logger_factory=structlog.PrintLoggerFactory(file=sys.stderr),
        cache_logger_on_first_use=True,
    )
    handler = logging.StreamHandler(sys.stderr)
    handler.set_name(_LIBRARY_HANDLER)
    handler.setFormatter(structlog.stdlib.ProcessorFormatter(
        foreign_pre_chain=[*stamped, structlog.stdlib.add_logger_name],
        processors=[structlog.stdlib.ProcessorFormatter.remove_processors_meta,
                    structlog.processors.format_exc_info, renderer],
    ))
    threshold = max(logging.WARNING, logging.getLevelNamesMapping()[level.upper()])
    handler.setLevel(threshold)  # a library that lowers its own logger's level (SQLAlchemy's echo) stays quiet
    root = logging.getLogger()
    for old in [h for h in root.handlers if h.get_name() == _LIBRARY_HANDLER]:  # configured again (a test)
        root.removeHandler(old)
    root.addHandler(handler)
    root.setLevel(threshold)
    logging.captureWarnings(True)  # Python's warnings (a ResourceWarning, a SAWarning) as lines of the log too
    structlog.contextvars.clear_contextvars()
    structlog.contextvars.bind_contextvars(service=service)


_LIBRARY_HANDLER = "cmcoord"


def configure_command_logging(service: str) -> None:
    """A `cmcoord` command's: it speaks to the operator on stdout, and only real problems go to the
    log. Asked only for its help, it configures nothing (the help imports no structlog)."""
    if "--help" in sys.argv[1:]:
        return
    configure_logging(service=service, fmt="console", level="error")
