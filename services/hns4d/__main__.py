"""python -m services.hns4d: the HNS4D service process."""

import asyncio

from services.hns4d import bootstrap
from services.hns4d.config import Settings
from shared.logging import configure_logging
from shared.runner import run_until_signalled


def main() -> None:
    settings = Settings()
    configure_logging(service="hns4d", fmt=settings.log_format, level=settings.log_level)
    asyncio.run(run_until_signalled(bootstrap.build(settings)))


if __name__ == "__main__":
    main()
