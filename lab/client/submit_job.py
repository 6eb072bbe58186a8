"""`submit-job`: the article's Listing 1 flag spellings, building the same XML as `lab submit`.

    submit-job --auth_user_file=dirk --auth_method_file=http-basic --auth_pass_file=krid \
       --input_url=http://host/convert.mov --param=R:-100 --response=callback \
       --callback_url=http://host/cb --auth_method_response=http-basic \
       --auth_user_response=dirk --auth_pass_response=krid
"""

from __future__ import annotations

import argparse
import sys

from botocore.exceptions import BotoCoreError, ClientError

from lab.client.submit import Auth, JobSpec, build_xml, parse_param, send
from lab.runtime.resources import LabEnv, clients_for
from lab.runtime.settings import load_settings
from worker.errors import FleetlabError


def _parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="submit-job", description="Submit a job (article flags).")
    p.add_argument("--service", default="analyze")
    p.add_argument("--input_url", "--input-url", dest="input_url")
    p.add_argument("--auth_user_file", help="input basic-auth user")
    p.add_argument("--auth_pass_file", help="input basic-auth password")
    p.add_argument("--auth_method_file", choices=["http-basic"], default="http-basic")
    p.add_argument("--param", action="append", default=[], help="NAME:VALUE, repeatable")
    p.add_argument("--response", choices=["callback", "queue"], default="queue")
    p.add_argument("--callback_url")
    p.add_argument("--auth_user_response")
    p.add_argument("--auth_pass_response")
    p.add_argument("--auth_method_response", choices=["http-basic"], default="http-basic")
    p.add_argument("--request_id", "--request-id", dest="request_id")
    p.add_argument("--verbose", action="store_true", help="print the request XML")
    return p


def main(argv: list[str] | None = None) -> int:
    """Build, optionally print, and send the request; print its message id."""
    args = _parser().parse_args(argv)
    try:
        spec = JobSpec(
            service=args.service,
            input_url=args.input_url,
            input_auth=Auth(args.auth_user_file, args.auth_pass_file or "")
            if args.auth_user_file
            else None,
            params=[parse_param(p, ":") for p in args.param],
            response=args.response,
            callback_url=args.callback_url,
            callback_auth=Auth(args.auth_user_response, args.auth_pass_response or "")
            if args.auth_user_response
            else None,
            request_id=args.request_id,
        )
        body = build_xml(spec)
        if args.verbose:
            sys.stderr.write(body.decode())
        env = LabEnv.load(load_settings().home)
        print(send(clients_for(env).sqs, env.request_queue_url, body))
    except FleetlabError as exc:
        print(f"submit-job: {exc}", file=sys.stderr)
        return 1
    except (BotoCoreError, ClientError) as exc:
        print(f"submit-job: AWS call failed: {exc}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
