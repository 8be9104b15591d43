"""python -m services.notify: the notify service process."""

import asyncio

from services.notify import bootstrap
from services.notify.config import Settings
from shared.logging import configure_logging
from shared.runner import run_until_signalled


def main() -> None:
    settings = Settings()
    configure_logging(service="notify", fmt=settings.log_format, level=settings.log_level)
    asyncio.run(run_until_signalled(bootstrap.build(settings)))


if __name__ == "__main__":
    main()
