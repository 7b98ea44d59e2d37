"""Signing in and out, the login rate limit, CSRF, languages and escaping."""

from __future__ import annotations

from tests.webapp.conftest import PASSWORD, csrf_token


def test_auth_pages_need_sign_in(client):
    response = client.get("/")
    assert response.status_code == 302
    assert "/login" in response.headers["Location"]


def test_auth_sign_in_shows_inbox_and_sign_out_ends_it(client, web_user, sign_in):
    web_user("rita", "rep")
    response = sign_in("rita")
    assert response.status_code == 302
    page = client.get("/").get_data(as_text=True)
    assert "My tasks" in page
    assert "Rita" in page
    token = csrf_token(client, "/")
    assert client.post("/logout", data={"csrf_token": token}).status_code == 302
    assert client.get("/").status_code == 302


def test_auth_wrong_password_is_refused_without_saying_which(client, web_user, sign_in):
    web_user("rita", "rep")
    for username in ("rita", "nobody"):
        response = sign_in(username, "wrong password")
        assert response.status_code == 401
        assert "Wrong username or password." in response.get_data(as_text=True)


def test_auth_five_failures_pause_sign_in_even_with_the_right_password(client, web_user, sign_in):
    web_user("rita", "rep")
    for _ in range(5):
        assert sign_in("rita", "guess").status_code == 401
    response = sign_in("rita", PASSWORD)
    assert response.status_code == 429
    assert "Too many failed sign-ins" in response.get_data(as_text=True)


def test_auth_post_without_csrf_token_is_refused(client, web_user):
    web_user("rita", "rep")
    response = client.post("/login", data={"username": "rita", "password": PASSWORD})
    assert response.status_code == 400
    assert "form expired" in response.get_data(as_text=True)


def test_auth_open_redirect_is_ignored(client, web_user):
    web_user("rita", "rep")
    token = csrf_token(client)
    response = client.post(
        "/login?next=//evil.example/x",
        data={"username": "rita", "password": PASSWORD, "csrf_token": token},
    )
    assert response.headers["Location"] == "/"


def test_auth_chinese_interface_by_browser_and_by_choice(client, web_user, sign_in):
    page = client.get("/login", headers={"Accept-Language": "zh-CN,zh;q=0.9"}).get_data(
        as_text=True
    )
    assert "登录" in page
    assert "用户名" in page
    web_user("wang", "rep", locale="zh_CN")
    sign_in("wang")
    assert "我的任务" in client.get("/").get_data(as_text=True)
    assert "My tasks" in client.get("/?lang=en").get_data(as_text=True)
    assert "My tasks" in client.get("/").get_data(as_text=True)  # the choice is remembered


def test_auth_names_are_escaped(app, client, web_user, sign_in):
    from sqlalchemy import select

    from crm.directory.models import User
    from webapp import db

    web_user("mallory", "rep")
    with app.app_context():
        user = db.session.scalar(select(User).where(User.username == "mallory"))
        user.display_name = "<script>alert(1)</script>"
        db.session.commit()
    sign_in("mallory")
    page = client.get("/").get_data(as_text=True)
    assert "<script>alert(1)</script>" not in page
    assert "&lt;script&gt;alert(1)&lt;/script&gt;" in page
