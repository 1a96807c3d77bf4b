"""A JSON log formatter as a site would use (python-json-logger's idea in a few lines): one object per line."""

import json
import logging

_STANDARD = set(vars(logging.LogRecord("", 0, "", 0, "", (), None))) | {"message", "asctime"}


class JsonFormatter(logging.Formatter):
    def format(self, record):
        data = {"level": record.levelname, "logger": record.name, "message": record.getMessage()}
        data.update({key: value for key, value in vars(record).items() if key not in _STANDARD})
        return json.dumps(data, default=str)
