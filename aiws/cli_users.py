"""Account commands: ``aiws user add|list|token|revoke|disable|enable|passwd``.

Passwords are read from the terminal without echo (asked twice), or as the first line of standard input
when it is not a terminal (``echo "$PW" | aiws user add alice --role radiologist``); never from the command
line, where other users of the machine would see them. A new API token is printed once; only its SHA-256
is kept. Every change is audited with the actor ``cli``.
"""
from __future__ import annotations

import argparse
import getpass
import sys

from aiws.api import accounts
from aiws.api.auth import Role
from aiws.config import Config
from aiws.errors import AiwsError
from aiws.ledger import Ledger
from aiws.logsetup import CONSOLE

_ACTOR = "cli"


def _ledger(config: Config) -> Ledger:
    return Ledger.of_config(config)


def read_password(prompt: str = "Password: ") -> str:
    """A password from the terminal (asked twice) or the first line of a non-terminal stdin.

    Raises:
        AiwsError: the two entries differ, or stdin is empty.
    """
    if sys.stdin.isatty():
        first = getpass.getpass(prompt)
        if getpass.getpass("Again: ") != first:
            raise AiwsError("the two passwords differ")
        return first
    line = sys.stdin.readline().rstrip("\r\n")
    if not line:
        raise AiwsError("no password on standard input")
    return line


def cmd_add(args: argparse.Namespace, config: Config) -> int:
    account = accounts.create_account(_ledger(config), args.name, args.role, read_password(), actor=_ACTOR)
    CONSOLE.info(f"account {account.name} added ({account.role.value})")
    return 0


def cmd_list(args: argparse.Namespace, config: Config) -> int:
    ledger = _ledger(config)
    tokens = accounts.list_tokens(ledger)
    for a in accounts.list_accounts(ledger):
        active = sum(1 for t in tokens if t.account == a.name and t.revoked_at is None)
        state = "disabled" if a.disabled else "active"
        CONSOLE.info(f"{a.name:<24} {a.role.value:<12} {state:<9} {active} token(s)")
    return 0


def cmd_token(args: argparse.Namespace, config: Config) -> int:
    token = accounts.issue_token(_ledger(config), args.name, args.role, args.label, actor=_ACTOR)
    CONSOLE.info(token)  # the token alone on stdout (scripts capture it); shown this once
    return 0


def cmd_revoke(args: argparse.Namespace, config: Config) -> int:
    accounts.revoke_token(_ledger(config), args.token_id, _ACTOR)
    CONSOLE.info(f"token {args.token_id} revoked")
    return 0


def cmd_disable(args: argparse.Namespace, config: Config) -> int:
    accounts.set_disabled(_ledger(config), args.name, args.command_name == "disable", _ACTOR)
    CONSOLE.info(f"account {args.name} {args.command_name}d")
    return 0


def cmd_role(args: argparse.Namespace, config: Config) -> int:
    accounts.set_role(_ledger(config), args.name, args.role, _ACTOR)
    CONSOLE.info(f"account {args.name} is now {args.role}")
    return 0


def cmd_passwd(args: argparse.Namespace, config: Config) -> int:
    accounts.set_password(_ledger(config), args.name, read_password("New password: "), _ACTOR)
    CONSOLE.info(f"password of {args.name} changed; its sessions ended")
    return 0


def register(sub: argparse._SubParsersAction) -> None:  # type: ignore[type-arg]
    roles = [r.value for r in Role]
    p = sub.add_parser("user", help="console and API accounts")
    user = p.add_subparsers(dest="user_command", required=True)
    q = user.add_parser("add", help="add an account (password from the terminal or stdin)")
    q.add_argument("name")
    q.add_argument("--role", required=True, choices=roles)
    q.set_defaults(handler=cmd_add)
    user.add_parser("list", help="accounts, roles, states, active tokens").set_defaults(handler=cmd_list)
    q = user.add_parser("token", help="issue an API token (printed once)")
    q.add_argument("name")
    q.add_argument("--role", choices=roles, default=None, help="act with this role (default: the account's)")
    q.add_argument("--label", default="", help="what the token is for")
    q.set_defaults(handler=cmd_token)
    q = user.add_parser("revoke", help="revoke an API token by its id (first 12 hex digits, see the console)")
    q.add_argument("token_id")
    q.set_defaults(handler=cmd_revoke)
    for name in ("disable", "enable"):
        q = user.add_parser(name, help=f"{name} an account")
        q.add_argument("name")
        q.set_defaults(handler=cmd_disable, command_name=name)
    q = user.add_parser("role", help="change an account's role")
    q.add_argument("name")
    q.add_argument("role", choices=roles)
    q.set_defaults(handler=cmd_role)
    q = user.add_parser("passwd", help="set an account's password (its sessions end)")
    q.add_argument("name")
    q.set_defaults(handler=cmd_passwd)
