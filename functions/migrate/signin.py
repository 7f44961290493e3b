"""The inbox's sign-in, set up at deploy: the stack's Cognito app client for the inbox gets its OAuth
settings (authorization code with PKCE, the scopes, the inbox URL as the only redirect).

The template cannot say this itself: the HTTP API's JWT authorizer names the inbox client as an
audience, and the client's redirect URL names the API, a cycle CloudFormation refuses. So the client is
created without OAuth settings and this custom resource (``Custom::SignoffInboxSignIn``) applies them
once both exist, keeping every other setting of the client as it is.
"""

from __future__ import annotations

from typing import Any

RESOURCE_TYPE = "Custom::SignoffInboxSignIn"

# What UpdateUserPoolClient takes (anything it is not given, it resets): kept from the client as
# DescribeUserPoolClient reports it, apart from the OAuth settings set here.
_KEPT = (
    "ClientName",
    "RefreshTokenValidity",
    "AccessTokenValidity",
    "IdTokenValidity",
    "TokenValidityUnits",
    "ReadAttributes",
    "WriteAttributes",
    "ExplicitAuthFlows",
    "DefaultRedirectURI",
    "AnalyticsConfiguration",
    "PreventUserExistenceErrors",
    "EnableTokenRevocation",
    "EnablePropagateAdditionalUserContextData",
    "AuthSessionValidity",
    "RefreshTokenRotation",
)


def configure(properties: dict[str, Any], cognito: Any) -> str:
    """Give the inbox's app client its OAuth settings; return what was done (for the stack events).

    Args:
        properties: the resource's properties: ``UserPoolId``, ``ClientId``, ``CallbackURLs`` (the
            inbox's URL), ``LogoutURLs`` and ``Scopes``.
        cognito: a boto3 ``cognito-idp`` client.

    Raises:
        ValueError: a property is missing or a URL is not https.
    """
    pool, client_id = properties.get("UserPoolId"), properties.get("ClientId")
    callbacks = list(properties.get("CallbackURLs") or [])
    logouts = list(properties.get("LogoutURLs") or [])
    scopes = list(properties.get("Scopes") or ["openid"])
    if not pool or not client_id or not callbacks:
        raise ValueError("UserPoolId, ClientId and CallbackURLs are required")
    if not all(isinstance(url, str) and url.startswith("https://") for url in callbacks + logouts):
        raise ValueError("the inbox's redirect URLs must be https URLs")
    current = cognito.describe_user_pool_client(UserPoolId=pool, ClientId=client_id)["UserPoolClient"]
    settings = {key: current[key] for key in _KEPT if key in current}
    settings.pop("DefaultRedirectURI", None)  # must be one of the callbacks; the inbox names its own
    cognito.update_user_pool_client(
        UserPoolId=pool,
        ClientId=client_id,
        **settings,
        CallbackURLs=callbacks,
        LogoutURLs=logouts,
        AllowedOAuthFlows=["code"],
        AllowedOAuthScopes=scopes,
        AllowedOAuthFlowsUserPoolClient=True,
        SupportedIdentityProviders=["COGNITO"],
    )
    return f"inbox sign-in: client {client_id} redirects to {', '.join(callbacks)}"


def apply(event: dict[str, Any]) -> str:
    """The custom resource's Create and Update (Delete has nothing to undo: the client goes with
    the stack)."""
    if event.get("RequestType") == "Delete":
        return "nothing to do: the client is deleted with the stack"
    import boto3

    return configure(event.get("ResourceProperties") or {}, boto3.client("cognito-idp"))
