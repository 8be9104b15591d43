"""python -m services.lessons: the lessons service process."""

import asyncio

from services.lessons import bootstrap
from services.lessons.config import Settings
from shared.logging import configure_logging
from shared.runner import run_until_signalled


def main() -> None:
    settings = Settings()
    configure_logging(service="lessons", fmt=settings.log_format, level=settings.log_level)
    asyncio.run(run_until_signalled(bootstrap.build(settings)))


if __name__ == "__main__":
    main()
