"""python -m services.roster: the roster service process."""

import asyncio

from services.roster import bootstrap
from services.roster.config import Settings
from shared.logging import configure_logging
from shared.runner import run_until_signalled


def main() -> None:
    settings = Settings()
    configure_logging(service="roster", fmt=settings.log_format, level=settings.log_level)
    asyncio.run(run_until_signalled(bootstrap.build(settings)))


if __name__ == "__main__":
    main()
