//! Compile a validated [`Policy`] into a decision tree: host, then method,
//! then a path trie (static over `{param}` over trailing `/**`), each leaf a
//! route with its compiled requirement, interned scopes and rate limit.

use std::collections::HashMap;

use rustc_hash::FxBuildHasher;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use crate::credential::{Challenge, Verifier};
pub use crate::decision::IdentityNames;
use crate::path::Segments;
use crate::policy::{
    Diagnostic, Diagnostics, IdentityHeaders, PatternSegment, Policy, RateKey, Requirement,
    ScopeRequirement, Settings, Span, Unmatched,
};
use crate::ratelimit::LimitSpec;

/// Most distinct scopes one policy may name (the width of [`ScopeSet`]).
pub const MAX_SCOPES: usize = 256;

/// A set of interned scopes.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct ScopeSet(pub [u64; 4]);

impl ScopeSet {
    pub fn insert(&mut self, id: usize) {
        if let Some(w) = self.0.get_mut(id / 64) {
            *w |= 1u64 << (id % 64);
        }
    }

    pub fn contains_all(&self, other: &ScopeSet) -> bool {
        self.0.iter().zip(other.0.iter()).all(|(a, b)| a & b == *b)
    }

    pub fn intersects(&self, other: &ScopeSet) -> bool {
        self.0.iter().zip(other.0.iter()).any(|(a, b)| a & b != 0)
    }

    pub fn and(&self, other: &ScopeSet) -> ScopeSet {
        let mut out = *self;
        for (a, b) in out.0.iter_mut().zip(other.0.iter()) {
            *a &= b;
        }
        out
    }
}

/// A compiled requirement over credential indices.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Req {
    Public,
    Cred(usize),
    AnyOf(Box<[Req]>),
    AllOf(Box<[Req]>),
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ScopeCheck {
    None,
    AllOf(ScopeSet),
    AnyOf(ScopeSet),
}

pub struct CompiledLimit {
    pub spec: LimitSpec,
    pub id: u64,
    pub key: RateKey,
}

pub struct CompiledRoute {
    pub name: Arc<str>,
    pub req: Req,
    pub scopes: ScopeCheck,
    /// The required scope names, for `www-authenticate`'s `scope=`.
    pub scope_names: Arc<str>,
    /// The required scope names one by one, for checking small scope lists
    /// by comparison rather than by hashing every held scope.
    pub scope_list: Box<[Box<str>]>,
    pub limit: Option<Arc<CompiledLimit>>,
    /// Distinct challenges of the credentials this route accepts, for 401s.
    pub challenges: Arc<[Challenge]>,
    /// Does any credential of this route read `Authorization: Bearer`?
    pub bearer: bool,
}

pub struct CompiledCredential {
    pub name: Arc<str>,
    pub verifier: Verifier,
}

/// Maps filled at compile time and only read while deciding. FxHash rather
/// than SipHash: request input is only ever looked up, never inserted, so an
/// attacker cannot build the collision chains that HashDoS needs.
pub type FastMap<K, V> = HashMap<K, V, FxBuildHasher>;

/// A trie node: children by static segment, then one `{param}` child, then a `/**` leaf.
#[derive(Default)]
pub struct Node {
    pub statics: Statics,
    pub param: Option<Box<Node>>,
    /// Route index if a pattern ends here.
    pub leaf: Option<usize>,
    /// Route index of a trailing `/**` here.
    pub rest: Option<usize>,
}

/// Up to this many children are found by comparison rather than hashing.
const LINEAR_CHILDREN: usize = 4;

/// A node's children by static segment. Most nodes have one or two, where
/// comparing the segment beats hashing it; a node with many (a root listing
/// thousands of services) is looked up through a hash index.
#[derive(Default)]
pub struct Statics {
    items: Vec<(Box<str>, Node)>,
    index: FastMap<Box<str>, usize>,
}

impl Statics {
    /// Inlined into the trie walk for the common small node; only a large
    /// node pays for a call (and the hashing).
    #[inline]
    pub fn get(&self, seg: &str) -> Option<&Node> {
        if self.items.len() <= LINEAR_CHILDREN {
            return self.items.iter().find(|(k, _)| **k == *seg).map(|(_, n)| n);
        }
        self.get_hashed(seg)
    }

    #[inline(never)]
    fn get_hashed(&self, seg: &str) -> Option<&Node> {
        let i = *self.index.get(seg)?;
        self.items.get(i).map(|(_, n)| n)
    }

    /// The child for `seg`, created if missing (compile time only).
    fn child(&mut self, seg: &str) -> Option<&mut Node> {
        let i = match self.index.get(seg) {
            Some(&i) => i,
            None => {
                self.index.insert(seg.into(), self.items.len());
                self.items.push((seg.into(), Node::default()));
                self.items.len() - 1
            }
        };
        self.items.get_mut(i).map(|(_, n)| n)
    }

    pub fn len(&self) -> usize {
        self.items.len()
    }

    pub fn is_empty(&self) -> bool {
        self.items.is_empty()
    }
}

impl Node {
    /// The most specific route for these segments: static, then param, then rest.
    /// Walks the segment iterator itself (cloned to backtrack) rather than a
    /// collected list: collecting cost more than the lookups on short paths.
    pub fn find(&self, segs: Segments<'_>) -> Option<usize> {
        let mut rest = segs;
        let Some(seg) = rest.next() else {
            return self.leaf.or(self.rest);
        };
        if let Some(r) = self
            .statics
            .get(seg)
            .and_then(|child| child.find(rest.clone()))
        {
            return Some(r);
        }
        if !seg.is_empty() {
            if let Some(r) = self.param.as_deref().and_then(|child| child.find(rest)) {
                return Some(r);
            }
        }
        self.rest
    }
}

/// A host's tries, one per method. Methods are few, so a list compared in
/// order is cheaper than hashing the method.
#[derive(Default)]
pub struct MethodTable {
    pub by_method: Vec<(Box<str>, Node)>,
    pub any: Node,
}

impl MethodTable {
    fn find(&self, method: &str, segs: Segments<'_>) -> Option<usize> {
        if let Some(r) = self
            .by_method
            .iter()
            .find(|(m, _)| **m == *method)
            .and_then(|(_, node)| node.find(segs.clone()))
        {
            return Some(r);
        }
        self.any.find(segs)
    }
}

/// A compiled policy: immutable, shared behind an `Arc`, swapped whole.
pub struct CompiledPolicy {
    pub settings: Settings,
    pub identity: Arc<IdentityNames>,
    pub credentials: Vec<CompiledCredential>,
    pub routes: Vec<CompiledRoute>,
    pub hosts: FastMap<Box<str>, MethodTable>,
    pub any_host: MethodTable,
    pub scope_ids: FastMap<Box<str>, usize>,
    /// Header names that carry credentials, for gateways to strip upstream.
    pub credential_headers: Vec<String>,
    /// Files the policy came from (for reload watching and errors).
    pub files: Vec<PathBuf>,
}

fn identity_names(h: &IdentityHeaders) -> IdentityNames {
    IdentityNames {
        principal: h.principal.as_str().into(),
        consumer: h.consumer.as_str().into(),
        scopes: h.scopes.as_str().into(),
        credential: h.credential.as_str().into(),
    }
}

impl CompiledPolicy {
    /// Route index for a method and canonical path on a host.
    pub fn route_for(&self, host: Option<&str>, method: &str, path: &str) -> Option<usize> {
        let segs = crate::path::segments(path);
        if let Some(r) = host
            .and_then(|h| self.hosts.get(h))
            .and_then(|t| t.find(method, segs.clone()))
        {
            return Some(r);
        }
        self.any_host.find(method, segs)
    }

    pub fn unmatched_allows(&self) -> bool {
        self.settings.unmatched == Unmatched::Allow
    }

    pub fn scope_set<'a>(&self, scopes: impl IntoIterator<Item = &'a String>) -> ScopeSet {
        let mut set = ScopeSet::default();
        for s in scopes {
            if let Some(&id) = self.scope_ids.get(s.as_str()) {
                set.insert(id);
            }
        }
        set
    }
}

fn diag_at(policy: &Policy, span: Span, msg: String) -> Diagnostic {
    let file = policy.files.get(span.file).cloned().unwrap_or_default();
    Diagnostic::new(file, span.line, span.col, msg)
}

fn base_dir(policy: &Policy, span: Span) -> &Path {
    policy
        .files
        .get(span.file)
        .and_then(|f| f.parent())
        .unwrap_or(Path::new("."))
}

fn compile_req(r: &Requirement) -> Req {
    match r {
        Requirement::Public => Req::Public,
        Requirement::Credential(i) => Req::Cred(*i),
        Requirement::AnyOf(v) => Req::AnyOf(v.iter().map(compile_req).collect()),
        Requirement::AllOf(v) => Req::AllOf(v.iter().map(compile_req).collect()),
    }
}

fn req_creds(r: &Req, out: &mut Vec<usize>) {
    match r {
        Req::Public => {}
        Req::Cred(i) => {
            if !out.contains(i) {
                out.push(*i);
            }
        }
        Req::AnyOf(v) | Req::AllOf(v) => v.iter().for_each(|c| req_creds(c, out)),
    }
}

/// Compiles a validated policy. Errors (unreadable key files, weak keys, too
/// many scopes) are located at the definition that caused them.
pub fn compile(policy: &Policy) -> Result<CompiledPolicy, Diagnostics> {
    let mut errors = Diagnostics::default();

    let mut credentials = Vec::with_capacity(policy.credentials.len());
    let mut credential_headers: Vec<String> = Vec::new();
    for def in &policy.credentials {
        match Verifier::build(&def.kind, base_dir(policy, def.name.span)) {
            Ok(verifier) => credentials.push(CompiledCredential {
                name: def.name.value.as_str().into(),
                verifier,
            }),
            Err(msg) => errors.push(diag_at(
                policy,
                def.name.span,
                format!("credential `{}`: {msg}", def.name.value),
            )),
        }
        for h in def.kind.headers() {
            if !credential_headers.contains(&h) {
                credential_headers.push(h);
            }
        }
    }

    let mut scope_ids: FastMap<Box<str>, usize> = FastMap::default();
    let mut intern = |name: &str, span: Span, errors: &mut Diagnostics| -> Option<usize> {
        if let Some(&id) = scope_ids.get(name) {
            return Some(id);
        }
        let id = scope_ids.len();
        if id >= MAX_SCOPES {
            errors.push(diag_at(
                policy,
                span,
                format!("more than {MAX_SCOPES} distinct scopes in one policy"),
            ));
            return None;
        }
        scope_ids.insert(name.into(), id);
        Some(id)
    };

    let limits: Vec<Arc<CompiledLimit>> = policy
        .rate_limits
        .iter()
        .map(|d| {
            let spec = LimitSpec {
                name: d.name.value.as_str().into(),
                limit: d.limit,
                per: d.per,
                burst: d.burst,
            };
            // State survives a reload only for an unchanged definition, bucket key included.
            let mut h = std::hash::DefaultHasher::new();
            std::hash::Hash::hash(&(spec.id(), d.key), &mut h);
            let id = std::hash::Hasher::finish(&h);
            Arc::new(CompiledLimit {
                id,
                spec,
                key: d.key,
            })
        })
        .collect();

    let mut routes = Vec::with_capacity(policy.routes.len());
    let mut hosts: FastMap<Box<str>, MethodTable> = FastMap::default();
    let mut any_host = MethodTable::default();
    for (idx, route) in policy.routes.iter().enumerate() {
        let (scopes, names) = match &route.scopes {
            ScopeRequirement::None => (ScopeCheck::None, Vec::new()),
            ScopeRequirement::AllOf(v) | ScopeRequirement::AnyOf(v) => {
                let mut set = ScopeSet::default();
                for s in v {
                    if let Some(id) = intern(s, route.span, &mut errors) {
                        set.insert(id);
                    }
                }
                let check = if matches!(route.scopes, ScopeRequirement::AllOf(_)) {
                    ScopeCheck::AllOf(set)
                } else {
                    ScopeCheck::AnyOf(set)
                };
                (check, v.clone())
            }
        };
        let req = compile_req(&route.require);
        let mut creds = Vec::new();
        req_creds(&req, &mut creds);
        let mut challenges: Vec<Challenge> = Vec::new();
        let mut bearer = false;
        for c in &creds {
            if let Some(cc) = credentials.get(*c) {
                if let Some(ch) = cc.verifier.challenge() {
                    bearer |= ch == Challenge::Bearer;
                    if !challenges.contains(&ch) {
                        challenges.push(ch);
                    }
                }
            }
        }
        routes.push(CompiledRoute {
            name: route.name.value.as_str().into(),
            req,
            scopes,
            scope_names: names.join(" ").into(),
            scope_list: names.iter().map(|n| n.as_str().into()).collect(),
            limit: route.rate_limit.and_then(|i| limits.get(i)).cloned(),
            challenges: challenges.into(),
            bearer,
        });

        let table = match &route.matcher.host {
            Some(h) => hosts.entry(h.as_str().into()).or_default(),
            None => &mut any_host,
        };
        let roots: Vec<&mut Node> = if route.matcher.methods.is_empty() {
            vec![&mut table.any]
        } else {
            // Each method has its own trie; a route listing two methods is in both.
            for m in &route.matcher.methods {
                if !table.by_method.iter().any(|(x, _)| **x == **m) {
                    table.by_method.push((m.as_str().into(), Node::default()));
                }
            }
            table
                .by_method
                .iter_mut()
                .filter(|(m, _)| route.matcher.methods.iter().any(|x| x.as_str() == &**m))
                .map(|(_, n)| n)
                .collect()
        };
        for root in roots {
            let mut node = Some(root);
            let mut placed = false;
            for seg in &route.matcher.path.segments {
                node = match seg {
                    PatternSegment::Static(s) => node.and_then(|n| n.statics.child(s)),
                    PatternSegment::Param(_) => {
                        node.map(|n| &mut **n.param.get_or_insert_with(Box::default))
                    }
                    PatternSegment::Rest => {
                        if let Some(n) = node.as_deref_mut() {
                            if n.rest.is_none() {
                                n.rest = Some(idx);
                            }
                        }
                        placed = true;
                        break;
                    }
                };
            }
            match node {
                Some(n) if !placed => {
                    if n.leaf.is_none() {
                        n.leaf = Some(idx);
                    }
                }
                Some(_) => {}
                // `Statics::child` always yields the child it made; failing
                // closed anyway: a route that cannot be placed is an error.
                None => errors.push(diag_at(
                    policy,
                    route.span,
                    format!(
                        "internal: route `{}` could not be compiled",
                        route.name.value
                    ),
                )),
            }
        }
    }

    if !errors.is_empty() {
        return Err(errors);
    }
    Ok(CompiledPolicy {
        settings: policy.settings.clone(),
        identity: Arc::new(identity_names(&policy.settings.identity_headers)),
        credentials,
        routes,
        hosts,
        any_host,
        scope_ids,
        credential_headers,
        files: policy.files.clone(),
    })
}
