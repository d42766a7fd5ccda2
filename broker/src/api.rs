//! HTTP handlers: thin shells that parse, call [`State`] and the pure
//! modules, and answer JSON or a [`Problem`].

use std::time::Duration;

use actix_web::http::header;
use actix_web::{web, HttpRequest, HttpResponse};
use base64::engine::general_purpose::URL_SAFE_NO_PAD as B64;
use base64::Engine as _;
use futures_util::StreamExt as _;
use identity::jws::{self, JwsError, TokenClaims};
use identity::session::{document_hash, Manifest, MANIFEST_TYPE};
use identity::{format_timestamp, Did};
use serde::Deserialize;
use serde_json::{json, Value};

use crate::challenge::{self, ChallengeRefused, Purpose};
use crate::problem::Problem;
use crate::session::{
    self, Admitted, FreezeReason, JoinRefused, Member, SealRefused, SessionRecord,
};
use crate::state::State;
use crate::verify;

/// Longest roster long-poll.
pub(crate) const MAX_WAIT: u64 = 60;
/// Clock skew tolerated on tokens.
const TOKEN_LEEWAY: Duration = Duration::from_secs(5);

type Data = web::Data<State>;

/// Reads a request body of at most `limit` bytes within `within`. actix-web's own timers
/// cover only the headers and the idle time between requests, so without this a client that
/// sends one byte a minute would hold a connection and a handler for ever.
pub(crate) async fn read_body(
    req: &HttpRequest,
    mut payload: web::Payload,
    limit: usize,
    within: Duration,
) -> Result<Option<Value>, Problem> {
    if let Some(ct) = req.headers().get(header::CONTENT_TYPE) {
        let ct = ct.to_str().unwrap_or("");
        if !ct.starts_with("application/json") && !ct.contains("+json") {
            return Err(Problem::new(
                actix_web::http::StatusCode::UNSUPPORTED_MEDIA_TYPE,
                "unsupported_media_type",
                format!("send the body as application/json, not {ct:?}"),
            ));
        }
    }
    let mut body = web::BytesMut::new();
    let deadline = tokio::time::Instant::now() + within;
    loop {
        let Ok(next) = tokio::time::timeout_at(deadline, payload.next()).await else {
            return Err(Problem::new(
                actix_web::http::StatusCode::REQUEST_TIMEOUT,
                "body_timeout",
                format!(
                    "the request body did not arrive within {} ms; check the network to the broker and retry",
                    within.as_millis()
                ),
            ));
        };
        let Some(chunk) = next else { break };
        let chunk = chunk.map_err(|e| {
            Problem::bad_request(
                "body_unreadable",
                format!("the request body could not be read: {e}"),
            )
        })?;
        if body.len() + chunk.len() > limit {
            return Err(Problem::new(
                actix_web::http::StatusCode::PAYLOAD_TOO_LARGE,
                "body_too_large",
                format!("the request body exceeds {limit} bytes"),
            ));
        }
        body.extend_from_slice(&chunk);
    }
    if body.iter().all(u8::is_ascii_whitespace) {
        return Ok(None);
    }
    serde_json::from_slice(&body).map(Some).map_err(|e| {
        Problem::bad_request(
            "malformed_json",
            format!("the request body is not valid JSON: {e}"),
        )
    })
}

async fn required_body(
    req: &HttpRequest,
    payload: web::Payload,
    st: &State,
) -> Result<Value, Problem> {
    read_body(req, payload, st.max_body, st.body_timeout)
        .await?
        .ok_or_else(|| Problem::bad_request("body_missing", "this request needs a JSON body"))
}

/// The bearer token of a request (header, or `access_token` query for
/// WebSocket clients that cannot set headers).
pub(crate) fn authenticate(req: &HttpRequest, st: &State) -> Result<Did, Problem> {
    let from_header = req
        .headers()
        .get(header::AUTHORIZATION)
        .and_then(|h| h.to_str().ok())
        .and_then(|h| h.strip_prefix("Bearer "));
    let from_query =
        web::Query::<std::collections::HashMap<String, String>>::from_query(req.query_string())
            .ok()
            .and_then(|q| q.get("access_token").cloned());
    let token = match (from_header, from_query.as_deref()) {
        (Some(t), _) | (None, Some(t)) => t.trim().to_owned(),
        (None, None) => {
            return Err(Problem::unauthorized(
                "token_missing",
                "this request needs an access token: authenticate at POST /v1/auth/token and send `Authorization: Bearer <token>`",
            ))
        }
    };
    let claims = jws::verify_token(&token, &st.key.public(), &st.domain, st.now(), TOKEN_LEEWAY)
        .map_err(|e| match e {
            JwsError::Expired => Problem::unauthorized(
                "token_expired",
                "the access token expired; authenticate again",
            ),
            other => Problem::unauthorized(
                "token_invalid",
                format!("the access token is not valid here: {other}; authenticate again"),
            ),
        })?;
    if claims.iss != st.did.as_str() {
        return Err(Problem::unauthorized(
            "token_invalid",
            "the access token was issued by another broker",
        ));
    }
    Did::parse(&claims.sub).map_err(|_| {
        Problem::unauthorized(
            "token_invalid",
            "the access token's subject is not a did:key",
        )
    })
}

fn counted<T>(st: &State, r: Result<T, Problem>) -> Result<T, Problem> {
    if let Err(p) = &r {
        st.metrics.auth_failure(p.code());
    }
    r
}

fn refused(c: ChallengeRefused) -> Problem {
    let code = match c {
        ChallengeRefused::Malformed => "challenge_unknown",
        ChallengeRefused::Expired => "challenge_expired",
        ChallengeRefused::WrongPurpose { .. } => "challenge_wrong_purpose",
    };
    Problem::unauthorized(code, c.to_string())
}

/// Verifies a presentation answering a challenge for `purpose` and consumes
/// the challenge.
async fn check_presentation(
    st: &State,
    vp: Value,
    purpose: Purpose,
) -> Result<identity::VerifiedPresentation, Problem> {
    let presented = verify::presented_challenge(&vp)?.to_owned();
    challenge::check(&presented, &purpose, st.now()).map_err(refused)?;
    let verified =
        verify::presentation(&st.pool, vp, presented.clone(), st.domain.clone(), st.now()).await?;
    // Consumed only after the signature checked out, so a forged answer
    // cannot burn someone else's challenge.
    if !st.store.take_challenge(&presented).await? {
        return Err(Problem::unauthorized(
            "challenge_replayed",
            "this challenge was already used or was never issued; ask for a new one",
        ));
    }
    Ok(verified)
}

pub(crate) async fn healthz(st: Data) -> Result<HttpResponse, Problem> {
    st.store.ping().await?;
    Ok(HttpResponse::Ok().content_type("text/plain").body("ok"))
}

pub(crate) async fn metrics(st: Data) -> HttpResponse {
    HttpResponse::Ok()
        .content_type("text/plain; version=0.0.4; charset=utf-8")
        .body(st.metrics.render())
}

pub(crate) async fn openapi() -> HttpResponse {
    HttpResponse::Ok()
        .content_type("application/json")
        .body(crate::schemas::OPENAPI)
}

pub(crate) async fn schema(name: web::Path<String>) -> Result<HttpResponse, Problem> {
    crate::schemas::file(&name)
        .map(|s| {
            HttpResponse::Ok()
                .content_type("application/schema+json")
                .body(s)
        })
        .ok_or_else(|| {
            let names: Vec<_> = crate::schemas::FILES.iter().map(|(n, _)| *n).collect();
            Problem::not_found(
                "unknown_schema",
                format!("no schema {name:?}; there are: {}", names.join(", ")),
            )
        })
}

pub(crate) async fn broker(st: Data) -> HttpResponse {
    HttpResponse::Ok().json(json!({"did": st.did, "domain": st.domain}))
}

#[derive(Deserialize)]
struct ChallengeRequest {
    #[serde(default)]
    purpose: Option<String>,
    #[serde(default)]
    session: Option<String>,
}

pub(crate) async fn challenge(
    req: HttpRequest,
    payload: web::Payload,
    st: Data,
) -> Result<HttpResponse, Problem> {
    let body = read_body(&req, payload, st.max_body, st.body_timeout)
        .await?
        .unwrap_or_else(|| json!({}));
    st.schemas.check_challenge(&body)?;
    let r: ChallengeRequest = serde_json::from_value(body)
        .map_err(|e| Problem::bad_request("request_invalid", e.to_string()))?;
    let purpose = match (r.purpose.as_deref(), r.session) {
        (Some("join"), Some(id)) => {
            st.load(&id).await?;
            Purpose::Join(id)
        }
        _ => Purpose::Authenticate,
    };
    let now = st.now();
    let c = st.with_rng(|rng| challenge::mint(&purpose, now, st.challenge_ttl, rng));
    st.store.put_challenge(&c, st.challenge_ttl).await?;
    Ok(HttpResponse::Ok().json(json!({
        "challenge": c,
        "domain": st.domain,
        "expires": format_timestamp(now + st.challenge_ttl),
    })))
}

pub(crate) async fn token(
    req: HttpRequest,
    payload: web::Payload,
    st: Data,
) -> Result<HttpResponse, Problem> {
    counted(&st, token_inner(&req, payload, &st).await)
}

async fn token_inner(
    req: &HttpRequest,
    payload: web::Payload,
    st: &State,
) -> Result<HttpResponse, Problem> {
    let vp = required_body(req, payload, st).await?;
    let v = check_presentation(st, vp, Purpose::Authenticate).await?;
    let now = challenge::unix(st.now());
    let claims = TokenClaims {
        iss: st.did.to_string(),
        sub: v.holder.to_string(),
        aud: st.domain.clone(),
        iat: now,
        exp: now + st.token_ttl.as_secs(),
        jti: B64.encode(st.random_bytes::<12>()),
    };
    Ok(HttpResponse::Ok().json(json!({
        "accessToken": jws::issue_token(&st.key, &claims),
        "tokenType": "Bearer",
        "expiresIn": st.token_ttl.as_secs(),
        "did": v.holder,
    })))
}

pub(crate) async fn publish(
    req: HttpRequest,
    payload: web::Payload,
    st: Data,
) -> Result<HttpResponse, Problem> {
    counted(&st, publish_inner(&req, payload, &st).await)
}

async fn publish_inner(
    req: &HttpRequest,
    payload: web::Payload,
    st: &State,
) -> Result<HttpResponse, Problem> {
    let caller = authenticate(req, st)?;
    let body = required_body(req, payload, st).await?;
    st.schemas.check_publish(&body)?;
    let signed = body.get("manifest").cloned().unwrap_or(Value::Null);
    let manifest = check_manifest(&signed, &caller, st).await?;
    authorize_organizer(&caller, body.get("organizerCredential"), st).await?;
    let now = st.now();
    if now > manifest.join_deadline() {
        return Err(Problem::bad_request(
            "manifest_expired",
            format!(
                "the manifest's join deadline {} has already passed",
                manifest.join_deadline
            ),
        ));
    }
    let hash = document_hash(&signed);
    for _ in 0..4 {
        let id = session_id(st.random_bytes::<16>());
        let pub_body = session::publication_body(&id, &st.did, &st.domain, &hash, &signed, now);
        let publication =
            identity::statement::sign(&st.key, session::PUBLICATION_TYPE, &pub_body, now)
                .map_err(|e| Problem::unavailable("signing_failed", crate::error_chain(&e)))?;
        let rec = SessionRecord::new(
            id.clone(),
            publication.clone(),
            manifest.clone(),
            hash.clone(),
        );
        let value = serde_json::to_string(&rec)
            .map_err(|e| Problem::unavailable("store_corrupt", e.to_string()))?;
        if st
            .store
            .create_session(&id, &value, st.session_ttl(&rec))
            .await?
        {
            st.metrics.session("published");
            tracing::info!(session = %id, organizer = %caller, "session published");
            return Ok(HttpResponse::Created()
                .insert_header((header::LOCATION, format!("/v1/sessions/{id}")))
                .json(publication));
        }
    }
    Err(Problem::unavailable(
        "id_collision",
        "could not allocate a session id; try again",
    ))
}

async fn check_manifest(signed: &Value, caller: &Did, st: &State) -> Result<Manifest, Problem> {
    let organizer = signed
        .get("organizer")
        .and_then(Value::as_str)
        .and_then(|s| Did::parse(s).ok())
        .ok_or_else(|| {
            Problem::bad_request(
                "manifest_invalid",
                "the manifest's organizer is not a did:key",
            )
        })?;
    if organizer != *caller {
        return Err(Problem::forbidden(
            "organizer_mismatch",
            format!("the manifest names organizer {organizer} but you authenticated as {caller}"),
        ));
    }
    let doc = signed.clone();
    let verdict = st
        .pool
        .run(move || identity::statement::verify(&doc, MANIFEST_TYPE, Some(&organizer)))
        .await?;
    let verified = match verdict {
        Err(e) => {
            return Err(Problem::bad_request(
                "manifest_invalid",
                crate::error_chain(&e),
            ))
        }
        Ok(Err(e)) => {
            return Err(Problem::bad_request(
                "manifest_signature_invalid",
                format!(
                    "the manifest's signature does not verify: {e}; sign it with the organizer key"
                ),
            ))
        }
        Ok(Ok(v)) => v,
    };
    let manifest = Manifest::from_body(&verified.body)
        .map_err(|e| Problem::bad_request("manifest_invalid", e.to_string()))?;
    mpc_core::Program::from_name(&manifest.computation.program, &manifest.computation.params)
        .map_err(|e| Problem::bad_request("unknown_program", e.to_string()))?;
    Ok(manifest)
}

async fn authorize_organizer(
    caller: &Did,
    credential: Option<&Value>,
    st: &State,
) -> Result<(), Problem> {
    let policy = &st.organizers;
    if policy.anyone || policy.trusted.contains(caller) {
        return Ok(());
    }
    let not_trusted = |why: String| {
        Problem::forbidden(
            "organizer_not_trusted",
            format!("{caller} may not publish sessions on this broker: {why}"),
        )
    };
    let (Some(ctype), Some(vc)) = (&policy.credential_type, credential) else {
        return Err(not_trusted(match &policy.credential_type {
            Some(t) => format!(
                "it is not a trusted organizer; include an `organizerCredential` of type {t}"
            ),
            None => "it is not on the broker's trusted-organizer list".into(),
        }));
    };
    let vc = vc.clone();
    verify::check_shape(&vc)?;
    let now = st.now();
    let verdict = st
        .pool
        .run(move || identity::verify_credential(&vc, now))
        .await?;
    let v = match verdict {
        Err(e) => {
            return Err(Problem::bad_request(
                "credential_uncheckable",
                crate::error_chain(&e),
            ))
        }
        Ok(Err(e)) => {
            return Err(not_trusted(format!(
                "its organizer credential is invalid: {e}"
            )))
        }
        Ok(Ok(v)) => v,
    };
    if !v.types.iter().any(|t| t == ctype) {
        return Err(not_trusted(format!(
            "the organizer credential is not of type {ctype}"
        )));
    }
    if !policy.credential_issuers.contains(&v.issuer) {
        return Err(Problem::forbidden(
            "credential_untrusted_issuer",
            format!(
                "the organizer credential's issuer {} is not trusted by this broker",
                v.issuer
            ),
        ));
    }
    if v.subject.as_deref() != Some(caller.as_str()) {
        return Err(not_trusted(
            "the organizer credential is about someone else".into(),
        ));
    }
    Ok(())
}

pub(crate) async fn get_session(id: web::Path<String>, st: Data) -> Result<HttpResponse, Problem> {
    let rec = st.load(&id).await?;
    Ok(HttpResponse::Ok().json(json!({
        "session": rec.id,
        "state": rec.state(st.now()),
        "joined": rec.members.len(),
        "publication": rec.publication,
    })))
}

fn join_refused(e: JoinRefused) -> Problem {
    match e {
        JoinRefused::Expired(_) => Problem::conflict("session_expired", e.to_string()),
        JoinRefused::DeadlinePassed(_) => Problem::conflict("join_deadline_passed", e.to_string()),
        JoinRefused::Frozen => Problem::conflict("roster_frozen", e.to_string()),
        JoinRefused::Full(_) => Problem::conflict("session_full", e.to_string()),
    }
}

pub(crate) async fn join(
    req: HttpRequest,
    id: web::Path<String>,
    payload: web::Payload,
    st: Data,
) -> Result<HttpResponse, Problem> {
    counted(&st, join_inner(&req, &id, payload, &st).await)
}

async fn join_inner(
    req: &HttpRequest,
    id: &str,
    payload: web::Payload,
    st: &State,
) -> Result<HttpResponse, Problem> {
    let vp = required_body(req, payload, st).await?;
    let rec = st.load(id).await?;
    let holder = vp
        .get("holder")
        .and_then(Value::as_str)
        .and_then(|h| Did::parse(h).ok());
    // Cheap refusals before the expensive check.
    rec.precheck_join(holder.as_ref(), st.now())
        .map_err(join_refused)?;
    let evidence = vp.clone();
    let v = check_presentation(st, vp, Purpose::Join(id.to_owned())).await?;
    rec.manifest
        .admission
        .admits(&v)
        .map_err(|e| verify::policy(&e))?;
    let member = Member {
        did: v.holder.clone(),
        evidence,
    };
    let (admitted, rec) = st
        .update(id, |rec, now| {
            let (admitted, due) = rec.admit(member.clone(), now).map_err(join_refused)?;
            if let Some(reason) = due {
                st.freeze(rec, reason, now)?;
            }
            Ok(admitted)
        })
        .await?;
    if admitted == Admitted::Added {
        tracing::info!(session = id, did = %v.holder, joined = rec.members.len(), "party admitted");
    }
    Ok(HttpResponse::Ok().json(json!({
        "session": rec.id,
        "did": v.holder,
        "state": rec.state(st.now()),
        "joined": rec.members.len(),
    })))
}

pub(crate) async fn seal(
    req: HttpRequest,
    id: web::Path<String>,
    st: Data,
) -> Result<HttpResponse, Problem> {
    counted(&st, seal_inner(&req, &id, &st).await)
}

async fn seal_inner(req: &HttpRequest, id: &str, st: &State) -> Result<HttpResponse, Problem> {
    let caller = authenticate(req, st)?;
    let rec = st.load(id).await?;
    if rec.manifest.organizer != caller {
        return Err(Problem::forbidden(
            "not_organizer",
            format!(
                "only the organizer ({}) may seal this session",
                rec.manifest.organizer
            ),
        ));
    }
    let (_, rec) = st
        .update(id, |rec, now| {
            rec.check_seal(now).map_err(|e| match e {
                SealRefused::AlreadyFrozen => Problem::conflict("roster_frozen", e.to_string()),
                SealRefused::TooFew { .. } => Problem::conflict("too_few_parties", e.to_string()),
                SealRefused::Expired(_) => Problem::conflict("session_expired", e.to_string()),
            })?;
            st.freeze(rec, FreezeReason::Sealed, now)
        })
        .await?;
    Ok(HttpResponse::Ok().json(rec.roster))
}

#[derive(Deserialize)]
pub(crate) struct RosterQuery {
    wait: Option<String>,
}

pub(crate) async fn roster(
    id: web::Path<String>,
    q: web::Query<RosterQuery>,
    st: Data,
) -> Result<HttpResponse, Problem> {
    let wait = match q.wait.as_deref() {
        None => 0,
        Some(w) => match w.parse::<u64>() {
            Ok(s) if s <= MAX_WAIT => s,
            _ => {
                return Err(Problem::bad_request(
                    "request_invalid",
                    format!("wait must be a number of seconds from 0 to {MAX_WAIT}, not {w:?}"),
                ))
            }
        },
    };
    let rec = st.wait_for_roster(&id, Duration::from_secs(wait)).await?;
    match rec.roster {
        Some(r) => Ok(HttpResponse::Ok().json(r)),
        None => Err(not_frozen(&rec, st.now())),
    }
}

pub(crate) fn not_frozen(rec: &SessionRecord, now: std::time::SystemTime) -> Problem {
    match rec.state(now) {
        session::State::Expired => Problem::conflict(
            "session_expired",
            "the session expired (or its join deadline passed with too few parties); it will not get a roster",
        ),
        _ => Problem::conflict(
            "roster_not_frozen",
            format!(
                "the roster is not frozen yet ({} of {}..{} parties joined); ask again with ?wait=30",
                rec.members.len(),
                rec.manifest.admission.min_parties,
                rec.manifest.admission.max_parties
            ),
        ),
    }
}

pub(crate) async fn ice_servers(
    req: HttpRequest,
    id: web::Path<String>,
    st: Data,
) -> Result<HttpResponse, Problem> {
    let caller = counted(&st, authenticate(&req, &st))?;
    let rec = st.load(&id).await?;
    counted(&st, require_roster_member(&rec, &caller, &st))?;
    Ok(HttpResponse::Ok().json(json!({
        "iceServers": st.ice.servers_for(caller.as_str(), st.now()),
        "ttl": st.ice.turn_ttl.as_secs(),
    })))
}

pub(crate) fn require_roster_member(
    rec: &SessionRecord,
    did: &Did,
    st: &State,
) -> Result<(), Problem> {
    if rec.roster.is_none() {
        return Err(not_frozen(rec, st.now()));
    }
    if !rec.on_roster(did) {
        return Err(Problem::forbidden(
            "not_on_roster",
            format!("{did} is not on the roster of session {}", rec.id),
        ));
    }
    Ok(())
}

pub(crate) async fn not_found(req: HttpRequest) -> HttpResponse {
    use actix_web::ResponseError as _;
    Problem::not_found(
        "not_found",
        format!(
            "no route {} {}; see /v1/openapi.json",
            req.method(),
            req.path()
        ),
    )
    .error_response()
}

pub(crate) async fn method_not_allowed(req: HttpRequest) -> HttpResponse {
    use actix_web::ResponseError as _;
    Problem::new(
        actix_web::http::StatusCode::METHOD_NOT_ALLOWED,
        "method_not_allowed",
        format!(
            "{} is not allowed on {}; see /v1/openapi.json",
            req.method(),
            req.path()
        ),
    )
    .error_response()
}

/// A new session id: 16 random bytes, base64url. The first byte's top bit is cleared so the
/// id starts with one of `A`–`f`, never `-` (a command line would read such an id as an
/// option; 1 in 64 ids did) — 127 random bits remain.
fn session_id(mut bytes: [u8; 16]) -> String {
    bytes[0] &= 0x7f;
    B64.encode(bytes)
}

#[cfg(test)]
mod tests {
    #[test]
    fn session_ids_never_begin_with_a_dash_and_fit_the_schema() {
        for first in 0..=255u8 {
            let id = super::session_id([first; 16]);
            assert!(id.starts_with(|c: char| c.is_ascii_alphabetic()), "{id}");
            assert_eq!(id.len(), 22);
            assert!(id
                .chars()
                .all(|c| c.is_ascii_alphanumeric() || c == '-' || c == '_'));
        }
    }
}
