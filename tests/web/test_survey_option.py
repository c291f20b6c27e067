"""The option satisfaction_survey where operators set it (the environment, the API, the console
form) and the ratings where they read them (GET /metrics)."""

from __future__ import annotations

from dataclasses import replace

import pytest
import requests_mock

from app import create_app
from config.settings import ConfigError, load_settings
from tests.config.test_config import FULL
from tests.relay.test_survey import CS, POSTS, customer_writes, resolve, user_wrote, with_options
from tests.web.console.test_console import ADMIN as CONSOLE_ADMIN
from tests.web.console.test_console import FORM, post_form, sign_in
from tests.web.test_api import AUTH, api, api_settings, body, created, store  # noqa: F401 (fixtures)
from tests.web.test_metrics import TOKEN, scrape, value


def test_the_default_connection_takes_it_from_satisfaction_survey(tmp_path):
    assert load_settings({**FULL, "MEDIA_DIR": str(tmp_path)}).satisfaction_survey is False
    assert load_settings({**FULL, "MEDIA_DIR": str(tmp_path), "SATISFACTION_SURVEY": "true"}).satisfaction_survey
    with pytest.raises(ConfigError) as info:
        load_settings({**FULL, "SATISFACTION_SURVEY": "maybe"})
    assert any(line.startswith("SATISFACTION_SURVEY:") for line in info.value.problems)


def test_a_connection_starts_without_it_and_patch_switches_it_on(api, redis, api_settings, created):  # noqa: F811
    shown = api.get("/api/connections/shop-hcm", headers=AUTH).get_json()
    assert shown["options"]["satisfaction_survey"] is False
    resp = api.patch("/api/connections/shop-hcm", json={"options": {"satisfaction_survey": True}}, headers=AUTH)
    assert resp.status_code == 200 and resp.get_json()["options"]["satisfaction_survey"] is True
    assert store(redis, api_settings).get("shop-hcm").settings.satisfaction_survey is True


def test_a_value_that_is_not_a_boolean_is_400(api, created):  # noqa: F811
    resp = api.patch("/api/connections/shop-hcm", json={"options": {"satisfaction_survey": "maybe"}}, headers=AUTH)
    assert resp.status_code == 400
    assert resp.get_json()["fields"] == {"options.satisfaction_survey": "Not a valid boolean."}


def test_the_console_form_has_a_checkbox_for_it(settings, redis):
    web = create_app(replace(settings, admin_token=CONSOLE_ADMIN)).test_client()
    assert sign_in(web).status_code == 302
    form = dict(FORM, **{"options.satisfaction_survey": "on"})
    assert post_form(web, "/admin/connections/new", form, "/admin/connections/new").status_code == 302
    page = web.get("/admin/connections/shop-hcm").get_data(as_text=True)
    assert 'id="f-options-satisfaction_survey" name="options.satisfaction_survey"' in page
    assert page[page.index('id="f-options-satisfaction_survey"') :].split(">")[0].count("checked") == 1
    shown = web.get("/api/connections/shop-hcm", headers={"Authorization": f"Bearer {CONSOLE_ADMIN}"}).get_json()
    assert shown["options"]["satisfaction_survey"] is True
    vi = web.get("/admin/connections/shop-hcm", headers={"Accept-Language": "vi"}).get_data(as_text=True)
    assert "Mời khách hàng đánh giá khi nhân viên đóng cuộc trò chuyện" in vi


def test_ratings_are_counted_per_connection_and_rating(settings, ctx, public_dns):
    client = create_app(replace(settings, metrics_token=TOKEN)).test_client()
    with requests_mock.Mocker() as m:
        m.post(CS, json={"error": 0, "message": "Success", "data": {"message_id": "z-survey-1"}})
        m.post(POSTS, json={"id": "fc-note-1"})
        m.get(requests_mock.ANY, status_code=200, json={})
        on = with_options(ctx, satisfaction_survey=True)
        user_wrote(on, hours_ago=1)
        resolve(on)
        customer_writes(on, "4")
    got = scrape(client)
    assert value(got, "bridge_satisfaction_ratings_total", connection="default", rating="4") == 1
    assert value(got, "bridge_satisfaction_ratings_total", connection="default", rating="5") is None
