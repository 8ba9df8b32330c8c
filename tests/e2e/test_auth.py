"""AuthService over the network from Python's grpcio, against `harsha up
--demo`: the first admin printed by `harsha up`, tokens that an independent
JWT library (PyJWT) verifies from the JWKS alone, admin RPCs guarded by the
`auth:admin` scope, refresh rotation with reuse detection, lockout at the
fifth failure, sessions ended by logout, password change and disabling, and
field-named errors that never echo a secret."""

import base64
import json
import uuid

import grpc
import jwt
import pytest

from harsha.auth.v1 import auth_pb2 as pb
from harsha.auth.v1 import auth_pb2_grpc
from wire import violations

PASSWORD = "gulab jamun at noon"


@pytest.fixture(scope="module")
def auth_stub(mesh):
    channel = mesh.raw_channel("auth")
    yield auth_pb2_grpc.AuthServiceStub(channel)
    channel.close()


@pytest.fixture(scope="module")
def admin(mesh, auth_stub):
    """Call metadata carrying the first admin's access token."""
    reply = auth_stub.Login(pb.LoginRequest(username="admin", password=mesh.admin_password()))
    mesh.secrets.update({mesh.admin_password(), PASSWORD, "barfi for breakfast", reply.access_token, reply.refresh_token})
    return [("authorization", f"Bearer {reply.access_token}")]


def bearer(token: str) -> list:
    return [("authorization", f"Bearer {token}")]


def new_user(stub, admin, roles=("sales",), password=PASSWORD) -> pb.User:
    name = f"u{uuid.uuid4().hex[:10]}"
    return stub.CreateUser(
        pb.CreateUserRequest(username=name, email=f"{name}@harshadelights.in", password=password, roles=list(roles)),
        metadata=admin,
    ).user


def login(stub, user: pb.User, password=PASSWORD) -> pb.LoginResponse:
    return stub.Login(pb.LoginRequest(username=user.username, password=password))


def code_of(call) -> grpc.StatusCode:
    with pytest.raises(grpc.RpcError) as caught:
        call()
    return caught.value.code()


def test_tokens_verify_with_pyjwt_from_the_jwks_alone(mesh, auth_stub):
    reply = auth_stub.Login(pb.LoginRequest(username="admin", password=mesh.admin_password()))
    assert reply.token_type == "Bearer" and reply.expires_in == 900
    jwks = auth_stub.GetJwks(pb.GetJwksRequest())
    header = jwt.get_unverified_header(reply.access_token)
    assert header["alg"] == "EdDSA"
    (key,) = [k for k in jwks.keys if k.kid == header["kid"]]
    public = jwt.PyJWK({"kty": key.kty, "crv": key.crv, "x": key.x, "kid": key.kid, "use": key.use, "alg": key.alg})
    claims = jwt.decode(
        reply.access_token, public, algorithms=["EdDSA"], audience="harsha-mesh", issuer="harsha-auth",
        options={"require": ["exp", "iat", "nbf", "sub", "jti", "iss", "aud"]},
    )
    assert claims["roles"] == ["admin"] and "auth:admin" in claims["scopes"]
    assert claims["plan"] == "internal" and claims["exp"] - claims["iat"] == 900

    # One changed byte in the payload and PyJWT refuses it.
    head, payload, signature = reply.access_token.split(".")
    body = json.loads(base64.urlsafe_b64decode(payload + "=" * (-len(payload) % 4)))
    body["roles"] = ["admin", "root"]
    forged = base64.urlsafe_b64encode(json.dumps(body).encode()).rstrip(b"=").decode()
    with pytest.raises(jwt.InvalidSignatureError):
        jwt.decode(f"{head}.{forged}.{signature}", public, algorithms=["EdDSA"], audience="harsha-mesh")


def test_rotated_keys_keep_verifying_what_they_signed(mesh, auth_stub, admin):
    before = auth_stub.Login(pb.LoginRequest(username="admin", password=mesh.admin_password())).access_token
    kid = auth_stub.RotateSigningKeys(pb.RotateSigningKeysRequest(), metadata=admin).kid
    after = auth_stub.Login(pb.LoginRequest(username="admin", password=mesh.admin_password())).access_token
    assert jwt.get_unverified_header(after)["kid"] == kid
    kids = {k.kid for k in auth_stub.GetJwks(pb.GetJwksRequest()).keys}
    assert {kid, jwt.get_unverified_header(before)["kid"]} <= kids
    # The token signed with the retired key still works on an admin RPC.
    assert auth_stub.ListUsers(pb.ListUsersRequest(), metadata=bearer(before)).users


def test_admin_rpcs_need_a_token_with_the_scope(auth_stub, admin):
    request = pb.ListUsersRequest()
    assert code_of(lambda: auth_stub.ListUsers(request)) == grpc.StatusCode.UNAUTHENTICATED
    assert code_of(lambda: auth_stub.ListUsers(request, metadata=bearer("not.a.token"))) == grpc.StatusCode.UNAUTHENTICATED
    sales = login(auth_stub, new_user(auth_stub, admin))
    denied = code_of(lambda: auth_stub.ListUsers(request, metadata=bearer(sales.access_token)))
    assert denied == grpc.StatusCode.PERMISSION_DENIED
    assert auth_stub.ListUsers(request, metadata=admin).users


def test_a_reused_refresh_token_revokes_its_family(auth_stub, admin):
    first = login(auth_stub, new_user(auth_stub, admin))
    second = auth_stub.Refresh(pb.RefreshRequest(refresh_token=first.refresh_token))
    assert second.refresh_token != first.refresh_token and second.access_token != first.access_token
    # The retired token comes back (stolen): refused, and the family is gone.
    assert code_of(lambda: auth_stub.Refresh(pb.RefreshRequest(refresh_token=first.refresh_token))) == grpc.StatusCode.UNAUTHENTICATED
    assert code_of(lambda: auth_stub.Refresh(pb.RefreshRequest(refresh_token=second.refresh_token))) == grpc.StatusCode.UNAUTHENTICATED
    # Verifiers read the list with no credentials.
    revoked = set(auth_stub.ListRevokedTokens(pb.ListRevokedTokensRequest()).jtis)
    for token in (first.access_token, second.access_token):
        assert jwt.decode(token, options={"verify_signature": False})["jti"] in revoked


def test_lockout_at_the_fifth_failure_says_nothing_of_the_password(auth_stub, admin):
    user = new_user(auth_stub, admin)
    with pytest.raises(grpc.RpcError) as unknown:
        auth_stub.Login(pb.LoginRequest(username="nobody-" + uuid.uuid4().hex[:8], password=PASSWORD))
    for _ in range(4):
        with pytest.raises(grpc.RpcError) as wrong:
            login(auth_stub, user, password="rasgulla at midnight")
        assert wrong.value.code() == grpc.StatusCode.UNAUTHENTICATED
        # Unknown user and wrong password read the same.
        assert wrong.value.details() == unknown.value.details()
        assert "rasgulla" not in wrong.value.details()
    assert code_of(lambda: login(auth_stub, user, password="rasgulla at midnight")) == grpc.StatusCode.RESOURCE_EXHAUSTED
    # Locked: even the right password is refused the same way.
    assert code_of(lambda: login(auth_stub, user)) == grpc.StatusCode.RESOURCE_EXHAUSTED


def test_logout_ends_the_session_and_its_access_token(auth_stub, admin):
    session = login(auth_stub, new_user(auth_stub, admin))
    auth_stub.Logout(pb.LogoutRequest(refresh_token=session.refresh_token), metadata=bearer(session.access_token))
    assert code_of(lambda: auth_stub.Refresh(pb.RefreshRequest(refresh_token=session.refresh_token))) == grpc.StatusCode.UNAUTHENTICATED
    jti = jwt.decode(session.access_token, options={"verify_signature": False})["jti"]
    assert jti in auth_stub.ListRevokedTokens(pb.ListRevokedTokensRequest(), metadata=admin).jtis
    assert code_of(lambda: auth_stub.Logout(pb.LogoutRequest(refresh_token="made-up"))) == grpc.StatusCode.UNAUTHENTICATED


def test_a_logout_that_fails_ends_nothing(auth_stub, admin):
    session = login(auth_stub, new_user(auth_stub, admin))
    jti = jwt.decode(session.access_token, options={"verify_signature": False})["jti"]
    for refresh in ("made-up", ""):
        failed = code_of(lambda: auth_stub.Logout(pb.LogoutRequest(refresh_token=refresh),
                                                  metadata=bearer(session.access_token)))
        assert failed in (grpc.StatusCode.UNAUTHENTICATED, grpc.StatusCode.INVALID_ARGUMENT)
    assert jti not in auth_stub.ListRevokedTokens(pb.ListRevokedTokensRequest(), metadata=admin).jtis
    # The session goes on.
    auth_stub.Refresh(pb.RefreshRequest(refresh_token=session.refresh_token))


def test_a_password_change_ends_every_session(auth_stub, admin):
    user = new_user(auth_stub, admin)
    session = login(auth_stub, user)
    own = bearer(session.access_token)
    with pytest.raises(grpc.RpcError) as wrong:
        auth_stub.ChangePassword(
            pb.ChangePasswordRequest(user_id=user.user_id, current_password="not it at all", new_password="barfi for breakfast"),
            metadata=own,
        )
    assert wrong.value.code() == grpc.StatusCode.INVALID_ARGUMENT and "current_password" in violations(wrong.value)
    auth_stub.ChangePassword(
        pb.ChangePasswordRequest(user_id=user.user_id, current_password=PASSWORD, new_password="barfi for breakfast"),
        metadata=own,
    )
    assert code_of(lambda: auth_stub.Refresh(pb.RefreshRequest(refresh_token=session.refresh_token))) == grpc.StatusCode.UNAUTHENTICATED
    jti = jwt.decode(session.access_token, options={"verify_signature": False})["jti"]
    assert jti in auth_stub.ListRevokedTokens(pb.ListRevokedTokensRequest(), metadata=admin).jtis
    assert code_of(lambda: login(auth_stub, user)) == grpc.StatusCode.UNAUTHENTICATED
    login(auth_stub, user, password="barfi for breakfast")
    # Someone else's password needs auth:admin.
    other = new_user(auth_stub, admin)
    denied = code_of(lambda: auth_stub.ChangePassword(
        pb.ChangePasswordRequest(user_id=other.user_id, new_password="jalebi jalebi jalebi"),
        metadata=bearer(login(auth_stub, user, password="barfi for breakfast").access_token),
    ))
    assert denied == grpc.StatusCode.PERMISSION_DENIED


def test_disabled_users_lose_their_sessions(auth_stub, admin):
    user = new_user(auth_stub, admin, roles=("warehouse",))
    session = login(auth_stub, user)
    disabled = auth_stub.DisableUser(pb.DisableUserRequest(user_id=user.user_id), metadata=admin).user
    assert disabled.disabled
    assert code_of(lambda: auth_stub.Refresh(pb.RefreshRequest(refresh_token=session.refresh_token))) == grpc.StatusCode.UNAUTHENTICATED
    assert code_of(lambda: login(auth_stub, user)) == grpc.StatusCode.PERMISSION_DENIED
    missing = code_of(lambda: auth_stub.DisableUser(pb.DisableUserRequest(user_id=str(uuid.uuid4())), metadata=admin))
    assert missing == grpc.StatusCode.NOT_FOUND
    assert not auth_stub.EnableUser(pb.EnableUserRequest(user_id=user.user_id), metadata=admin).user.disabled
    login(auth_stub, user)


def test_users_update_and_list_in_pages(auth_stub, admin):
    user = new_user(auth_stub, admin)
    updated = auth_stub.UpdateUser(
        pb.UpdateUserRequest(user_id=user.user_id, roles=["viewer", "pricing-manager"], rate_limit_plan="partner"),
        metadata=admin,
    ).user
    assert sorted(updated.roles) == ["pricing-manager", "viewer"] and updated.rate_limit_plan == "partner"
    assert updated.email == user.email and "pricing:write" in updated.scopes
    claims = jwt.decode(login(auth_stub, user).access_token, options={"verify_signature": False})
    assert claims["plan"] == "partner" and "pricing:write" in claims["scopes"]
    for _ in range(2):
        new_user(auth_stub, admin)
    seen, token = [], ""
    while True:
        page = auth_stub.ListUsers(pb.ListUsersRequest(page_size=2, page_token=token), metadata=admin)
        assert len(page.users) <= 2
        seen += [u.username for u in page.users]
        token = page.next_page_token
        if not token:
            break
    assert seen == sorted(seen) and len(seen) == len(set(seen)) and user.username in seen


def test_bad_input_is_invalid_argument_naming_the_field(auth_stub, admin):
    def refused(**fields):
        request = dict(username="kaju", email="kaju@harshadelights.in", password=PASSWORD, roles=["sales"])
        request.update(fields)
        with pytest.raises(grpc.RpcError) as caught:
            auth_stub.CreateUser(pb.CreateUserRequest(**request), metadata=admin)
        return caught.value

    for field, value in [("username", "1x"), ("email", "kaju@"), ("password", "short"), ("rate_limit_plan", "gold")]:
        error = refused(**{field: value})
        assert error.code() == grpc.StatusCode.INVALID_ARGUMENT, field
        assert field in violations(error), (field, error.details())
    error = refused(roles=["sales", "overlord"])
    assert "roles[1]" in violations(error)
    error = refused(password="x" * 8)
    assert "x" * 8 not in error.details(), "the password is never echoed"
    taken = new_user(auth_stub, admin)
    error = refused(username=taken.username)
    assert error.code() == grpc.StatusCode.ALREADY_EXISTS and "username" in violations(error)
    error = code_of(lambda: auth_stub.GetUser(pb.GetUserRequest(user_id=""), metadata=admin))
    assert error == grpc.StatusCode.INVALID_ARGUMENT


def test_api_keys_are_shown_once_and_checked_for_network_and_scope(mesh, auth_stub, admin):
    owner = new_user(auth_stub, admin, roles=("sales",))
    created = auth_stub.CreateApiKey(
        pb.CreateApiKeyRequest(user_id=owner.user_id, name="CRM sync", scopes=["customer:read", "pricing:quote"],
                               allowed_cidrs=["10.8.0.0/16", "2001:db8::/32"]),
        metadata=admin,
    )
    key, record = created.key, created.api_key
    mesh.secrets.add(key)
    assert key.startswith(record.prefix + ".") and record.rate_limit_plan == owner.rate_limit_plan
    listed = auth_stub.ListApiKeys(pb.ListApiKeysRequest(user_id=owner.user_id), metadata=admin)
    assert [k.key_id for k in listed.api_keys] == [record.key_id]
    assert key.split(".", 1)[1].encode() not in listed.SerializeToString(), "the secret is never listed"

    def check(address="10.8.1.2", scope="", presented=key):
        return auth_stub.AuthenticateApiKey(
            pb.AuthenticateApiKeyRequest(key=presented, client_address=address, required_scope=scope))

    who = check(scope="pricing:quote")
    assert who.user_id == owner.user_id and list(who.scopes) == ["customer:read", "pricing:quote"]
    check(address="2001:db8:5::1")
    assert code_of(lambda: check(address="192.0.2.1")) == grpc.StatusCode.PERMISSION_DENIED
    assert code_of(lambda: check(scope="customer:write")) == grpc.StatusCode.PERMISSION_DENIED
    assert code_of(lambda: check(presented=record.prefix + "." + "A" * 43)) == grpc.StatusCode.UNAUTHENTICATED
    with pytest.raises(grpc.RpcError) as bad:
        check(address="not-an-address")
    assert "client_address" in violations(bad.value)

    revoked = auth_stub.RevokeApiKey(pb.RevokeApiKeyRequest(key_id=record.key_id), metadata=admin).api_key
    assert revoked.HasField("revoke_time")
    assert code_of(lambda: check()) == grpc.StatusCode.UNAUTHENTICATED
    assert not auth_stub.ListApiKeys(pb.ListApiKeysRequest(user_id=owner.user_id), metadata=admin).api_keys


def test_bad_api_key_requests_name_the_field(auth_stub, admin):
    owner = new_user(auth_stub, admin, roles=("warehouse",))
    for field, fields in [
        ("scopes[0]", dict(scopes=["pricing:write"])),
        ("allowed_cidrs[0]", dict(scopes=["inventory:read"], allowed_cidrs=["10.0.0.0/99"])),
        ("name", dict(scopes=["inventory:read"], name="")),
        ("rate_limit_plan", dict(scopes=["inventory:read"], rate_limit_plan="gold")),
    ]:
        request = dict(user_id=owner.user_id, name="scanner")
        request.update(fields)
        with pytest.raises(grpc.RpcError) as caught:
            auth_stub.CreateApiKey(pb.CreateApiKeyRequest(**request), metadata=admin)
        assert caught.value.code() == grpc.StatusCode.INVALID_ARGUMENT and field in violations(caught.value), field


def test_rate_limit_plans_are_listed_and_set(auth_stub, admin):
    names = [p.name for p in auth_stub.ListRateLimitPlans(pb.ListRateLimitPlansRequest(), metadata=admin).plans]
    assert {"standard", "partner", "internal"} <= set(names)
    plan = pb.RateLimitPlan(name="festival-rush", per_minute=1200, per_hour=50000, per_day=600000)
    assert auth_stub.SetRateLimitPlan(pb.SetRateLimitPlanRequest(plan=plan), metadata=admin).plan == plan
    with pytest.raises(grpc.RpcError) as caught:
        auth_stub.SetRateLimitPlan(pb.SetRateLimitPlanRequest(
            plan=pb.RateLimitPlan(name="tiny", per_minute=10, per_hour=5, per_day=5)), metadata=admin)
    assert "plan.per_hour" in violations(caught.value)
    # The edge reads plans with no credential.
    assert auth_stub.ListRateLimitPlans(pb.ListRateLimitPlansRequest()).plans


def test_operators_create_users_and_keys_from_the_command_line(mesh, auth_stub):
    import os
    import subprocess

    from conftest import harsha_binary

    env = dict(os.environ, HARSHA__DATABASES__GATEWAY=f"sqlite://{mesh.data_dir}/gateway.sqlite")
    name = f"ops{uuid.uuid4().hex[:8]}"

    def admin_command(*args):
        return subprocess.run([harsha_binary(), "admin", *args], env=env, capture_output=True, text=True,
                              stdin=subprocess.DEVNULL, timeout=60)

    made = admin_command("create-user", "--username", name, "--email", f"{name}@harshadelights.in",
                         "--role", "warehouse", "--plan", "partner")
    assert made.returncode == 0, made.stderr
    password = next(line.split(":", 1)[1].strip() for line in made.stdout.splitlines() if "password:" in line)
    mesh.secrets.add(password)
    claims = jwt.decode(login(auth_stub, pb.User(username=name), password=password).access_token,
                        options={"verify_signature": False})
    assert claims["roles"] == ["warehouse"] and claims["plan"] == "partner"

    keyed = admin_command("create-api-key", "--user", name, "--name", "scanner", "--scope", "inventory:write",
                          "--cidr", "10.0.0.0/8")
    assert keyed.returncode == 0, keyed.stderr
    key = next(line.split(":", 1)[1].strip() for line in keyed.stdout.splitlines() if "key:" in line)
    mesh.secrets.add(key)
    who = auth_stub.AuthenticateApiKey(pb.AuthenticateApiKeyRequest(key=key, client_address="10.1.2.3"))
    assert list(who.scopes) == ["inventory:write"]

    refused = admin_command("create-api-key", "--user", name, "--name", "x", "--scope", "auth:admin")
    assert refused.returncode != 0 and "scopes[0]" in refused.stderr
    taken = admin_command("create-user", "--username", name, "--email", "x@harshadelights.in", "--role", "viewer")
    assert taken.returncode != 0 and "taken" in taken.stderr
