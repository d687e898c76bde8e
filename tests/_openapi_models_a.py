"""A ``User`` model, for the test that two modules' same-named classes stay apart."""

import attrs


@attrs.frozen
class User:
    name: str
