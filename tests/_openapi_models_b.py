"""Another ``User`` model, for the test that two modules' same-named classes stay apart."""

import attrs


@attrs.frozen
class User:
    email: str
    admin: bool = False
