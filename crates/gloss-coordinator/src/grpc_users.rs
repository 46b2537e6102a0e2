//! gRPC adapter of the user service.

use gloss_proto::v1::*;
use tonic::{Request, Response, Status};

use crate::access::actor_of;
use crate::grpc::{ok, Api};

type Reply<T> = Result<Response<T>, Status>;

#[tonic::async_trait]
impl user_service_server::UserService for Api {
    async fn create_user(&self, req: Request<CreateUserRequest>) -> Reply<User> {
        let actor = actor_of(&req);
        let r = req.into_inner();
        ok(self
            .service
            .create_user_with(
                &actor,
                &r.name,
                &r.display_name,
                r.roles,
                r.project_roles,
                &r.password,
            )
            .await)
    }

    async fn list_users(&self, _: Request<ListUsersRequest>) -> Reply<ListUsersResponse> {
        ok(self
            .service
            .list_users()
            .await
            .map(|users| ListUsersResponse { users }))
    }

    async fn update_user(&self, req: Request<UpdateUserRequest>) -> Reply<User> {
        let actor = actor_of(&req);
        ok(self.service.update_user(&actor, req.into_inner()).await)
    }

    async fn issue_token(&self, req: Request<IssueTokenRequest>) -> Reply<IssuedToken> {
        let actor = actor_of(&req);
        let r = req.into_inner();
        ok(self
            .service
            .issue_token(&actor, &r.user, r.ttl_seconds, &r.description)
            .await)
    }

    async fn list_tokens(&self, req: Request<ListTokensRequest>) -> Reply<ListTokensResponse> {
        let r = req.into_inner();
        ok(self
            .service
            .list_tokens(&r.user)
            .await
            .map(|tokens| ListTokensResponse { tokens }))
    }

    async fn revoke_token(&self, req: Request<RevokeTokenRequest>) -> Reply<RevokeTokenResponse> {
        let actor = actor_of(&req);
        let r = req.into_inner();
        ok(self
            .service
            .revoke_token(&actor, &r.token_id)
            .await
            .map(|()| RevokeTokenResponse {}))
    }

    async fn sign_in(&self, req: Request<SignInRequest>) -> Reply<IssuedToken> {
        let r = req.into_inner();
        ok(self.service.sign_in(&r.user, &r.password).await)
    }

    async fn get_sign_in_options(
        &self,
        _: Request<GetSignInOptionsRequest>,
    ) -> Reply<SignInOptions> {
        Ok(Response::new(self.service.sign_in_options()))
    }

    async fn sign_in_with_oidc(&self, req: Request<SignInWithOidcRequest>) -> Reply<IssuedToken> {
        let r = req.into_inner();
        ok(self.service.sign_in_oidc(&r.id_token, None).await)
    }

    async fn sign_out(&self, req: Request<SignOutRequest>) -> Reply<SignOutResponse> {
        let actor = actor_of(&req);
        let token = req
            .metadata()
            .get("authorization")
            .and_then(|v| v.to_str().ok())
            .and_then(|v| v.strip_prefix("Bearer "))
            .unwrap_or_default()
            .to_string();
        ok(self
            .service
            .sign_out(&actor, &token)
            .await
            .map(|()| SignOutResponse {}))
    }
}
