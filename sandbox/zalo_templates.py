"""The Zalo simulator's template messages (ZBS Template Message, sent by user id): a few
realistic templates, the template API that lists them (`/business/template/all`,
`/business/template/info/v2`) and the send (`/v3.0/oa/message/template`), with Zalo's answers
(reference zalo.md §3.7; tests/fixtures/README.md names the sources of the shapes).

One template has parameters, one was approved before 2025-12-10 and so refuses a send by user
id with -249, one is disabled (absent from the approved list, its detail says DISABLE)."""

from __future__ import annotations

from flask import jsonify, request

TEMPLATES = {
    "412503": {
        "templateName": "Xác nhận đơn hàng",
        "status": "ENABLE",
        "listParams": [
            {"name": "customer_name", "require": True, "type": "STRING", "maxLength": 30, "minLength": 0},
            {"name": "order_code", "require": True, "type": "STRING", "maxLength": 10, "minLength": 0},
            {"name": "note", "require": False, "type": "STRING", "maxLength": 100, "minLength": 0},
        ],
        "templateTag": "TRANSACTION",
        "price": "300.0",
        "price_uid": "200.0",
        "by_uid": True,
        "body": "Chào {customer_name}, đơn hàng {order_code} của bạn đã được xác nhận. {note}",
    },
    "412877": {
        "templateName": "Cảm ơn khách hàng",
        "status": "ENABLE",
        "listParams": [],
        "templateTag": "CUSTOMER_CARE",
        "price": "200.0",
        "by_uid": True,
        "body": "Cảm ơn bạn đã tin dùng sản phẩm của chúng tôi! Mọi thắc mắc, bạn cứ nhắn cho OA nhé.",
    },
    "387650": {
        "templateName": "Nhắc lịch hẹn (cũ)",
        "status": "ENABLE",
        "listParams": [{"name": "time", "require": True, "type": "DATE", "maxLength": 20, "minLength": 0}],
        "templateTag": "CUSTOMER_CARE",
        "price": "300.0",
        "by_uid": False,  # approved before 2025-12-10: phone numbers only (-249 by user id)
        "body": "Bạn có lịch hẹn lúc {time}.",
    },
    "398120": {
        "templateName": "Khuyến mãi tháng 11",
        "status": "DISABLE",
        "listParams": [{"name": "voucher", "require": True, "type": "STRING", "maxLength": 20, "minLength": 0}],
        "templateTag": "PROMOTION",
        "price": "300.0",
        "by_uid": True,
        "body": "Nhập mã {voucher} để được giảm 20%.",
    },
}
STATUS_CODES = {"ENABLE": 1, "PENDING_REVIEW": 2, "REJECT": 3, "DISABLE": 4}
QUOTA_START = 200  # the OA's bought template messages


def info(template_id: str) -> dict | None:
    found = TEMPLATES.get(template_id)
    if found is None:
        return None
    shown = {k: v for k, v in found.items() if k not in ("by_uid", "body")}
    return {"templateId": int(template_id), **shown, "timeout": 7200000, "templateQuality": "HIGH"}


def listed(status: str) -> dict:
    rows = [
        {"templateId": int(i), "templateName": t["templateName"], "createdTime": 1765526400000, "status": t["status"]}
        for i, t in TEMPLATES.items()
        if not status or STATUS_CODES.get(t["status"]) == int(status)
    ]
    return {"error": 0, "message": "Success", "data": rows, "metadata": {"total": len(rows)}}


def problem(body, user_known: bool) -> tuple[int, str] | None:
    """Zalo's refusal of a template send, or None when it goes."""
    if not isinstance(body, dict) or not body.get("user_id") or not isinstance(body.get("template_data", {}), dict):
        return -201, "Parameters are invalid: user_id, template_id and template_data are required"
    template = TEMPLATES.get(str(body.get("template_id") or ""))
    if template is None:
        return -109, "Template ID is invalid"
    if template["status"] != "ENABLE":
        return -131, "Template is not approved"
    if not template["by_uid"]:
        return -249, "Template does not support send via UID"
    if not user_known:
        return -114, "User is invalid"
    data = body.get("template_data") or {}
    for param in template["listParams"]:
        value = str(data.get(param["name"]) or "")
        if param["require"] and not value:
            return -111, f"Missing parameter {param['name']}"
        if len(value) > param["maxLength"]:
            return -1121, f"Parameter {param['name']} is too long"
    return None


def rendered(template_id: str, data: dict) -> dict:
    """What the customer's phone shows: the template's name and its text filled in."""
    template = TEMPLATES[template_id]
    values = {p["name"]: str(data.get(p["name"]) or "") for p in template["listParams"]}
    return {"id": template_id, "name": template["templateName"], "text": template["body"].format(**values).strip()}


class TemplateRoutes:
    """The HTTP side, for one simulator (its OAs share the routes, as for CS messages)."""

    def __init__(self, sim):
        self.sim = sim
        self.quota = QUOTA_START

    def rules(self) -> list[tuple]:
        return [
            ("/business/template/all", "template_all", self.template_all, "GET"),
            ("/business/template/info/v2", "template_info", self.template_info, "GET"),
            ("/v3.0/oa/message/template", "message_template", self.send, "POST"),
        ]

    def template_all(self):
        denied = self.sim._by_token()._token_error()
        return denied or jsonify(listed(request.args.get("status", "")))

    def template_info(self):
        oa = self.sim._by_token()
        denied = oa._token_error()
        if denied:
            return denied
        found = info(request.args.get("template_id", ""))
        if found is None:
            return jsonify({"error": -109, "message": "Template ID is invalid"})
        return jsonify({"error": 0, "message": "Success", "data": found})

    def send(self):
        oa = self.sim._by_token()
        denied = oa._token_error()
        if denied:
            return denied
        body = request.get_json(silent=True)
        with oa.lock:
            user_id = str((body or {}).get("user_id") or "") if isinstance(body, dict) else ""
            refused = problem(body, user_id in oa.users)
            if refused:
                return jsonify({"error": refused[0], "message": refused[1]})
            message = {"template": rendered(str(body["template_id"]), body.get("template_data") or {})}
            record = oa._record(user_id, message, request.headers.get("access_token", ""))
            record["template_request"] = body
            self.quota -= 1
            quota = {"quota_type": "purchase_quota", "remain": str(self.quota)}
        data = {"message_id": record["message_id"], "user_id": user_id, "sent_time": str(record["time_ms"])}
        return jsonify({"error": 0, "message": "Success", "data": {**data, "quota": quota}})
