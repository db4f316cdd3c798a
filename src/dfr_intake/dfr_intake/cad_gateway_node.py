"""The CAD gateway: the HTTP API a computer-aided dispatch system posts calls to, in front of intake.

It serves dfr_intake.cad_http's application (schema, token, size limit) with uvicorn
and forwards each call to intake's ReportIncident service, the same path the scenario
feed and operators use, so intake's field checks, merging, policy and journal apply
to every call whatever its way in. HTTP clients wait in wall time, so the service
answer's timeout is wall time too.
"""
from __future__ import annotations

import os
import sys
import threading
from pathlib import Path

from dfr_common.ros.lean_node import LeanNode
from dfr_common.ros.node_main import run
from dfr_common.ros.parameters import Param, declare
from dfr_intake.cad_http import BackgroundServer, RequestRate, SubmitResult, create_app
from dfr_intake.call_messages import call_to_msg
from dfr_intake.calls import Call
from dfr_interfaces.srv import ReportIncident


def read_token(token_file: str, token_env: str) -> str:
    """The bearer token: from a file (a mounted secret) or else an environment variable, never from YAML."""
    if token_file:
        try:
            return Path(token_file).read_text().strip()
        except OSError as err:
            raise ValueError(f"cannot read the CAD token file {token_file}: {err.strerror}") from err
    token = os.environ.get(token_env, "").strip()
    if not token:
        raise ValueError(f"no CAD token: set parameter 'token_file' or the environment variable {token_env}")
    return token


class CadGatewayNode(LeanNode):
    def __init__(self, **kwargs):
        super().__init__("cad_gateway", **kwargs)
        p = self.params = declare(self, [
            Param("host", "127.0.0.1", "address to listen on; 0.0.0.0 for every interface"),
            Param("port", 8080, "TCP port; 0 takes a free one (tests)", 0, 65535),
            Param("token_file", "", "file holding the bearer token CAD must send"),
            Param("token_env", "DFR_CAD_TOKEN", "environment variable holding the token, when no file is given"),
            Param("max_body_bytes", 16384, "largest request body accepted", 256, 1048576),
            Param("max_requests_per_s", 50.0, "requests a second one address may send, once its burst is spent; "
                  "more get 429 with Retry-After", 0.1, 10000.0),
            Param("max_request_burst", 200, "requests one address may send at once", 1, 100000),
            Param("service_timeout_s", 5.0, "wall time to wait for intake's answer before 503", 0.1, 60.0),
            Param("tls_certfile", "", "certificate for HTTPS; empty: plain HTTP (keep it on a trusted network)"),
            Param("tls_keyfile", "", "private key for HTTPS"),
        ])
        token = read_token(p.token_file, p.token_env)
        self.client = self.create_client(ReportIncident, "report_incident")
        tls = {"ssl_certfile": p.tls_certfile, "ssl_keyfile": p.tls_keyfile} if p.tls_certfile else {}
        app = create_app(self._submit, token, p.max_body_bytes, RequestRate(p.max_requests_per_s, p.max_request_burst))
        self.server = BackgroundServer(app, p.host, p.port, **tls)
        self.server.start()
        self.get_logger().info(f"CAD API on {self.server.url}/v1/calls, forwarding to "
                               f"{self.resolve_service_name('report_incident')}")

    def _submit(self, call: Call) -> SubmitResult:
        """Called from the server's worker threads while the executor spins the node elsewhere."""
        answered = threading.Event()
        future = self.client.call_async(ReportIncident.Request(call=call_to_msg(call)))
        future.add_done_callback(lambda _: answered.set())
        if not answered.wait(self.params.service_timeout_s) or future.result() is None:
            future.cancel()
            self.get_logger().warning(f"call {call.cad_ref}: intake did not answer within "
                                      f"{self.params.service_timeout_s:g} s")
            return SubmitResult.intake_unavailable()
        return SubmitResult.from_report(future.result())

    def on_shutdown(self):
        self.server.stop()


def main(args=None):
    sys.exit(run(CadGatewayNode, args))


if __name__ == "__main__":
    main()
