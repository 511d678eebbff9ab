"""Unbound Flask extensions, bound to an app in the factory."""

from flask_limiter import Limiter
from flask_migrate import Migrate
from flask_sqlalchemy import SQLAlchemy
from flask_wtf import CSRFProtect
from sqlalchemy.orm import DeclarativeBase

from directory.privacy import rate_limit_key


class Base(DeclarativeBase):
    """Declarative base for every model."""


db = SQLAlchemy(model_class=Base)
migrate = Migrate()
csrf = CSRFProtect()
# Keys are keyed hashes of the client address, never the address itself.
limiter = Limiter(key_func=rate_limit_key)
