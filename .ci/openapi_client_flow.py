"""Drives the service through a client generated from docs/openapi.json
(openapi-python-client), validating every request and response of the
flow against the same document with openapi-core (problem+json read as
JSON). Exits non-zero on the first answer the typed client cannot parse,
the first status the flow did not expect, or the first request or
response the document does not describe.

Usage: openapi_client_flow.py BASE_URL DOCUMENT CLIENT_DIR ADMIN_USERNAME ADMIN_PASSWORD"""
import json
import sys
import uuid

import httpx
from openapi_core import Config, OpenAPI
from openapi_core.datatypes import RequestParameters
from werkzeug.datastructures import Headers, ImmutableMultiDict

base, document_path, client_dir, admin_username, admin_password = sys.argv[1:6]
sys.path.insert(0, client_dir)

from lt_client import AuthenticatedClient, Client  # noqa: E402
from lt_client.api.audit import list_audit_logs  # noqa: E402
from lt_client.api.auth import login, logout, refresh, register  # noqa: E402
from lt_client.api.loans import apply, approve, get_loan, list_loans  # noqa: E402
from lt_client.api.notifications import list_notifications  # noqa: E402
from lt_client.api.payments import payment_history, record_payment  # noqa: E402
from lt_client.api.reports import portfolio  # noqa: E402
from lt_client.models import (  # noqa: E402
    ApplyRequest, AuthResponse, LoanView, LoginRequest, PageAuditLogView, PageLoanView,
    PageNotificationView, PagePaymentView, PaymentRequestBody, PaymentView, PortfolioReport,
    RefreshRequest, RegisterRequest,
)

with open(document_path) as file:
    document = json.load(file)
document["servers"] = [{"url": base}]
openapi = OpenAPI.from_dict(
    document,
    config=Config(extra_media_type_deserializers={"application/problem+json": json.loads}),
)
checked = {"requests": 0, "responses": 0}


class CheckedRequest:
    """An httpx request as openapi-core reads one."""

    def __init__(self, request: httpx.Request):
        self.host_url = f"{request.url.scheme}://{request.url.netloc.decode()}"
        self.path = request.url.path
        self.method = request.method.lower()
        self.body = request.content or None
        self.content_type = request.headers.get("content-type", "")
        self.parameters = RequestParameters(
            query=ImmutableMultiDict(list(request.url.params.multi_items())),
            header=Headers(list(request.headers.items())),
            cookie=ImmutableMultiDict(),
        )


class CheckedResponse:
    """An httpx response as openapi-core reads one."""

    def __init__(self, response: httpx.Response):
        self.status_code = response.status_code
        self.content_type = response.headers.get("content-type", "")
        self.headers = Headers(list(response.headers.items()))
        self.data = response.content


def check_request(request: httpx.Request) -> None:
    openapi.validate_request(CheckedRequest(request))
    checked["requests"] += 1


def check_response(response: httpx.Response) -> None:
    response.read()
    openapi.validate_response(CheckedRequest(response.request), CheckedResponse(response))
    checked["responses"] += 1


hooks = {"event_hooks": {"request": [check_request], "response": [check_response]}}


def typed(answer, status, model):
    """The parsed body of `answer`, which must have `status` and parse as `model`."""
    assert answer.status_code == status, f"{answer.status_code} instead of {status}: {answer.content!r}"
    assert isinstance(answer.parsed, model), f"{type(answer.parsed).__name__} instead of {model.__name__}"
    return answer.parsed


anonymous = Client(base_url=base, httpx_args=hooks, raise_on_unexpected_status=True)
borrower = typed(register.sync_detailed(client=anonymous, body=RegisterRequest(
    email="integrator@example.com", username="integrator", password="integrator password 1")),
    201, AuthResponse)
admin = typed(login.sync_detailed(client=anonymous, body=LoginRequest(
    username=admin_username, password=admin_password)), 200, AuthResponse)
as_borrower = AuthenticatedClient(base_url=base, token=borrower.access_token, httpx_args=hooks,
                                  raise_on_unexpected_status=True)
as_admin = AuthenticatedClient(base_url=base, token=admin.access_token, httpx_args=hooks,
                               raise_on_unexpected_status=True)

loan = typed(apply.sync_detailed(client=as_borrower, body=ApplyRequest(amount="1200.00", term_months=12)),
             201, LoanView)
# Approved without a body: the rate quoted at application, due in a month.
approved = typed(approve.sync_detailed(loan.id, client=as_admin), 200, LoanView)
assert approved.status.value == "APPROVED" and len(approved.schedule) == 12, approved

key = str(uuid.uuid4())
paid = typed(record_payment.sync_detailed(loan.id, client=as_borrower, body=PaymentRequestBody(amount="50.00"),
                                          idempotency_key=key), 201, PaymentView)
again = record_payment.sync_detailed(loan.id, client=as_borrower, body=PaymentRequestBody(amount="50.00"),
                                     idempotency_key=key)
assert typed(again, 201, PaymentView).id == paid.id and again.headers.get("idempotent-replayed") == "true"
typed(record_payment.sync_detailed(loan.id, client=as_borrower, body=PaymentRequestBody(amount=19.99)),
      201, PaymentView)

read = typed(get_loan.sync_detailed(loan.id, client=as_borrower), 200, LoanView)
assert read.total_paid == "69.99", read.total_paid
typed(list_loans.sync_detailed(client=as_admin), 200, PageLoanView)
history = typed(payment_history.sync_detailed(read.user_id, client=as_borrower), 200, PagePaymentView)
assert len(history.items) == 2
typed(portfolio.sync_detailed(client=as_admin), 200, PortfolioReport)
typed(list_notifications.sync_detailed(read.user_id, client=as_borrower), 200, PageNotificationView)
typed(list_audit_logs.sync_detailed(client=as_admin), 200, PageAuditLogView)
renewed = typed(refresh.sync_detailed(client=anonymous, body=RefreshRequest(refresh_token=borrower.refresh_token)),
                200, AuthResponse)
assert logout.sync_detailed(client=anonymous, body=RefreshRequest(refresh_token=renewed.refresh_token)).status_code == 204
print(f"openapi client flow: {checked['requests']} requests and {checked['responses']} responses valid")
