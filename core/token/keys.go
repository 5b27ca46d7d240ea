package token

import (
	"context"
	"crypto"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/rsa"
	"crypto/x509"
	"encoding/base64"
	"encoding/json"
	"fmt"
	"slices"
	"sync"
	"sync/atomic"
	"time"

	"github.com/go-jose/go-jose/v4"
	"github.com/hashicorp/go-hclog"

	"github.com/sessiond/sessiond/spi"
	"github.com/sessiond/sessiond/spi/usersessions"
)

// RecordKind is the record kind under which a realm's keys are stored, one record per realm
// keyed by the realm name.
const RecordKind = "realm-keys"

// Store persists realm keys. The user-sessions provider's record methods satisfy it.
type Store interface {
	GetRecords(ctx context.Context, kind string, keys []string) ([]*usersessions.Record, error)
	// PutRecord writes when r.Version equals the stored version (0: must not exist) and
	// fails with spi.ErrConflict otherwise.
	PutRecord(ctx context.Context, r *usersessions.Record) (*usersessions.Record, error)
}

// Algorithm is a JWS signature algorithm a realm key can have.
type Algorithm string

const (
	ES256 Algorithm = "ES256" // ECDSA P-256 with SHA-256; the default
	RS256 Algorithm = "RS256" // RSASSA-PKCS1-v1_5 with SHA-256, 2048-bit keys; what many adapters expect
	// HS512 is HMAC with SHA-512 over a realm secret of secretBytes random bytes. It signs
	// refresh and offline tokens only, as Keycloak's realm HMAC key does: the secret is
	// never published, so nothing that verifies with the JWKS can take one for an access
	// token.
	HS512 Algorithm = "HS512"
)

// family is what a key is for: the published asymmetric key signs access tokens, logout
// tokens and adapter actions; the realm secret signs refresh and offline tokens. Each
// family has its own active key and rotates on its own schedule.
type family int

const (
	asymmetric family = iota
	secret
)

func (f family) String() string {
	if f == secret {
		return "secret"
	}
	return "asymmetric"
}

func (a Algorithm) family() family {
	if a == HS512 {
		return secret
	}
	return asymmetric
}

// secretBytes is the size of a realm HMAC secret: SHA-512's block-sized key, as Keycloak's
// HS512 key generator makes.
const secretBytes = 64

const (
	rsaBits = 2048
	// defaultReload is how long a node trusts its cached copy of a realm's keys before it
	// reads them again, so that a key another node added is picked up.
	defaultReload = time.Minute
	// minReload bounds how often a token with an unknown kid makes this node re-read a
	// realm's keys: garbage tokens must not turn into a store read each.
	minReload = time.Second
	// maxPutAttempts bounds the re-read-and-retry loop when nodes race to add a key.
	maxPutAttempts = 5
)

// KeyOptions configure a KeyManager. The zero value is usable.
type KeyOptions struct {
	// Algorithm of the keys this manager creates ("" means ES256). A realm that already has
	// an active key keeps it, whatever its algorithm.
	Algorithm Algorithm
	// Reload is how long a realm's cached keys are used before being read again (0: 1 min).
	Reload time.Duration
	// Now stamps new keys and decides which retired keys still verify (nil: time.Now).
	Now func() time.Time
	// Passive says, for a realm, how long its keys go on verifying once a rotation retired
	// them (nil: defaultPassive). It is asked at each rotation, so it follows realm changes.
	Passive func(realm string) Passive
	// KEK, when set, encrypts the private keys and secrets in the store; keys found there
	// in plain text are encrypted when first read. nil stores them in plain text.
	KEK *KEK
	Log hclog.Logger
}

// KeyManager holds the signing keys of every realm: it creates a realm's first key on
// demand, persists keys through a Store and caches them. It is safe for concurrent use,
// and several nodes may share one Store.
//
// Callers pass only realms that exist: the manager keeps a cache entry for every realm name
// it is asked about.
type KeyManager struct {
	store   Store
	alg     Algorithm
	reload  time.Duration
	now     func() time.Time
	passive func(realm string) Passive
	kek     *KEK
	log     hclog.Logger

	realms sync.Map // realm name → *realmKeys
}

// realmKeys is one realm's cache entry. Readers take set without locking; load serialises
// this node's store reads and writes for the realm.
type realmKeys struct {
	load sync.Mutex
	set  atomic.Pointer[keySet]
}

// keySet is an immutable copy of a realm's stored keys.
type keySet struct {
	version int64      // of the record; 0 when none is stored
	stored  storedKeys // as in the record, for the next write
	keys    []*key     // both families, newest first
	byID    map[string]*key
	active  [2]*key // by family, the key that signs; nil when the realm has none yet
	loaded  time.Time
}

// key is one parsed realm key.
type key struct {
	id          string
	alg         Algorithm
	created     time.Time
	verifyUntil time.Time        // zero: the active key
	public      crypto.PublicKey // asymmetric keys
	private     crypto.Signer    // asymmetric keys
	secret      []byte           // HS512 keys
	// signers of the active key, by JWS header typ: the header says what a token is, and
	// each verifier in sessiond checks it.
	signers map[string]*compactSigner
}

// verifies returns what checks a signature made with k.
func (k *key) verifies() any {
	if k.secret != nil {
		return k.secret
	}
	return k.public
}

// usable reports whether the key still verifies tokens at now.
func (k *key) usable(now time.Time) bool { return k.verifyUntil.IsZero() || now.Before(k.verifyUntil) }

// storedKeys is the JSON value of a realm-keys record. The realm secrets share the record
// with the asymmetric keys rather than having a record kind of their own: one read loads
// everything a realm verifies with, and one versioned write rotates both families, so two
// nodes cannot leave them half rotated. They are a separate member so that a sessiond from
// before HMAC refresh tokens, which decodes only "keys", reads the record unchanged while a
// cluster is upgraded node by node.
type storedKeys struct {
	Keys    []stored `json:"keys"`
	Secrets []stored `json:"secrets,omitempty"`
}

type stored struct {
	// ID is the RFC 7638 thumbprint of the public key; for a secret, random (a hash of the
	// secret would be a published oracle of it).
	ID        string    `json:"kid"`
	Algorithm Algorithm `json:"alg"`
	Created   time.Time `json:"created"`
	// VerifyUntil is zero while the key signs. Rotation sets it: the key then only verifies,
	// and stays published in JWKS, until that time.
	VerifyUntil time.Time `json:"verify_until,omitzero"`
	PKCS8       []byte    `json:"pkcs8,omitempty"`  // private key, PKCS #8 DER; without a KEK
	Secret      []byte    `json:"secret,omitempty"` // HS512 secret; without a KEK
	// Sealed is PKCS8 or Secret encrypted with the KEK whose ID is KEKID (KEK.seal).
	Sealed []byte `json:"sealed,omitempty"`
	KEKID  string `json:"kek,omitempty"`
}

// plain reports whether any key is stored in plain text.
func (sk storedKeys) plain() bool {
	return slices.ContainsFunc(sk.all(), func(s stored) bool { return s.Sealed == nil })
}

// sealed returns sk with every key in plain text sealed with kek.
func (sk storedKeys) sealed(realm string, kek *KEK) storedKeys {
	seal := func(list []stored) []stored {
		list = slices.Clone(list)
		for i, s := range list {
			if s.Sealed == nil {
				list[i] = kek.seal(realm, s)
			}
		}
		return list
	}
	return storedKeys{Keys: seal(sk.Keys), Secrets: seal(sk.Secrets)}
}

// all returns both families' stored keys.
func (sk storedKeys) all() []stored { return append(slices.Clone(sk.Keys), sk.Secrets...) }

// with returns sk with s added to its family's list, first.
func (sk storedKeys) with(s stored) storedKeys {
	if s.Algorithm.family() == secret {
		sk.Secrets = append([]stored{s}, sk.Secrets...)
	} else {
		sk.Keys = append([]stored{s}, sk.Keys...)
	}
	return sk
}

// NewKeyManager returns a manager over store. It fails only on an unsupported Algorithm.
func NewKeyManager(store Store, opts KeyOptions) (*KeyManager, error) {
	m := &KeyManager{
		store:   store,
		alg:     opts.Algorithm,
		reload:  opts.Reload,
		now:     opts.Now,
		passive: opts.Passive,
		kek:     opts.KEK,
		log:     opts.Log,
	}
	if m.alg == "" {
		m.alg = ES256
	}
	if m.alg != ES256 && m.alg != RS256 {
		return nil, fmt.Errorf("token keys: algorithm %q is not supported (use %s or %s): %w", m.alg, ES256, RS256, spi.ErrInvalid)
	}
	if m.reload <= 0 {
		m.reload = defaultReload
	}
	if m.now == nil {
		m.now = time.Now
	}
	if m.log == nil {
		m.log = hclog.NewNullLogger()
	}
	return m, nil
}

// JWKS returns the realm's public keys that verify tokens now: the active key first, then
// retired keys still within their retirement period. It creates the realm's first key if
// it has none, so that clients can fetch keys before the first token is issued. Realm
// secrets are never in it.
func (m *KeyManager) JWKS(ctx context.Context, realm string) (jose.JSONWebKeySet, error) {
	set, err := m.signing(ctx, realm, asymmetric)
	if err != nil {
		return jose.JSONWebKeySet{}, err
	}
	now := m.now()
	active := set.active[asymmetric]
	published := []*key{active}
	for _, k := range set.keys {
		if k != active && k.alg.family() == asymmetric && k.usable(now) {
			published = append(published, k)
		}
	}
	out := jose.JSONWebKeySet{Keys: make([]jose.JSONWebKey, len(published))}
	for i, k := range published {
		out.Keys[i] = jose.JSONWebKey{Key: k.public, KeyID: k.id, Algorithm: string(k.alg), Use: "sig"}
	}
	return out, nil
}

// signing returns the realm's keys with an active key of family f, creating one if needed.
func (m *KeyManager) signing(ctx context.Context, realm string, f family) (*keySet, error) {
	e := m.entry(realm)
	set, err := m.cached(ctx, realm, e)
	if err != nil {
		return nil, err
	}
	if set.active[f] != nil {
		return set, nil
	}
	// Re-read under the realm's lock (rotate): another node, or another goroutine here, may
	// have created it. A new realm gets both kinds of key in one write, so that a node that
	// read its keys once has the secret too and does not refuse the first refresh token
	// another node signs.
	set, _, err = m.rotate(ctx, realm, true, func(*key) bool { return false })
	if err != nil {
		return nil, err
	}
	return set, nil
}

// verifying returns the realm's keys for verifying a token signed with kid. It never creates
// a key. An unknown kid makes it re-read the store, at most once per minReload, so that a key
// another node created is found.
func (m *KeyManager) verifying(ctx context.Context, realm, kid string) (*keySet, error) {
	e := m.entry(realm)
	set, err := m.cached(ctx, realm, e)
	if err != nil || set.byID[kid] != nil || m.now().Sub(set.loaded) < minReload {
		return set, err
	}
	fresh, err := m.refresh(ctx, realm, e, set)
	if err != nil {
		// The kid is unknown to the keys we have; an outage does not make it less so.
		return m.keepStale(realm, e, set, err), nil
	}
	return fresh, nil
}

func (m *KeyManager) entry(realm string) *realmKeys {
	if e, ok := m.realms.Load(realm); ok {
		return e.(*realmKeys)
	}
	e, _ := m.realms.LoadOrStore(realm, &realmKeys{})
	return e.(*realmKeys)
}

// cached returns the cached set, reading the store when there is none or it is older than
// the reload interval. A failed re-read keeps the old set: keys do not go bad because the
// store is briefly down.
func (m *KeyManager) cached(ctx context.Context, realm string, e *realmKeys) (*keySet, error) {
	set := e.set.Load()
	if set != nil && m.now().Sub(set.loaded) < m.reload {
		return set, nil
	}
	fresh, err := m.refresh(ctx, realm, e, set)
	if err != nil && set != nil {
		return m.keepStale(realm, e, set, err), nil
	}
	return fresh, err
}

// keepStale keeps using set after a failed re-read, and counts the failure as a read so
// that an outage costs one store call per interval, not one per token.
func (m *KeyManager) keepStale(realm string, e *realmKeys, set *keySet, err error) *keySet {
	m.log.Warn("cannot re-read realm keys; using the cached ones", "realm", realm, "error", err)
	retry := *set
	retry.loaded = m.now()
	e.set.CompareAndSwap(set, &retry)
	return &retry
}

// refresh re-reads the realm's keys unless another goroutine replaced seen meanwhile.
func (m *KeyManager) refresh(ctx context.Context, realm string, e *realmKeys, seen *keySet) (*keySet, error) {
	e.load.Lock()
	defer e.load.Unlock()
	if cur := e.set.Load(); cur != seen {
		return cur, nil
	}
	set, err := m.read(ctx, realm)
	if err != nil {
		return nil, err
	}
	e.set.Store(set)
	return set, nil
}

func (m *KeyManager) read(ctx context.Context, realm string) (*keySet, error) {
	recs, err := m.store.GetRecords(ctx, RecordKind, []string{realm})
	if err != nil {
		return nil, fmt.Errorf("read keys of realm %q: %w", realm, err)
	}
	if len(recs) != 1 || recs[0] == nil {
		return &keySet{loaded: m.now(), byID: map[string]*key{}}, nil
	}
	var sk storedKeys
	if err := json.Unmarshal(recs[0].Value, &sk); err != nil {
		return nil, fmt.Errorf("keys of realm %q: record is not valid: %w", realm, err)
	}
	set, err := m.parse(realm, recs[0].Version, sk)
	if err != nil || m.kek == nil || !sk.plain() {
		return set, err
	}
	// Keys stored in plain text, by a sessiond without a KEK: encrypt them now. A failed
	// write (another node migrating them too, an outage) leaves them for the next read.
	migrated, err := m.write(ctx, realm, set, sk)
	if err != nil {
		m.log.Warn("cannot encrypt the realm's keys stored in plain text; trying again at the next read", "realm", realm, "error", err)
		return set, nil
	}
	m.log.Info("encrypted the realm's keys stored in plain text with the key-encryption key", "realm", realm, "kek", m.kek.ID())
	return migrated, nil
}

// write stores sk as the realm's keys if the record is still at set's version.
func (m *KeyManager) write(ctx context.Context, realm string, set *keySet, sk storedKeys) (*keySet, error) {
	if m.kek != nil {
		sk = sk.sealed(realm, m.kek)
	}
	value, err := json.Marshal(sk)
	if err != nil {
		return nil, err
	}
	rec, err := m.store.PutRecord(ctx, &usersessions.Record{Kind: RecordKind, Key: realm, Value: value, Version: set.version})
	if err != nil {
		return nil, err
	}
	return m.parse(realm, rec.Version, sk)
}

// parse turns stored keys into a key set, newest first.
func (m *KeyManager) parse(realm string, version int64, sk storedKeys) (*keySet, error) {
	all := sk.all()
	set := &keySet{version: version, stored: sk, byID: make(map[string]*key, len(all)), loaded: m.now()}
	for _, s := range all {
		if s.Sealed != nil {
			var err error
			if s, err = m.kek.open(realm, s); err != nil {
				return nil, err
			}
		}
		k, err := parseKey(s)
		if err != nil {
			return nil, fmt.Errorf("keys of realm %q: key %q: %w", realm, s.ID, err)
		}
		if set.byID[k.id] != nil {
			return nil, fmt.Errorf("keys of realm %q: two keys have kid %q", realm, k.id)
		}
		set.keys = append(set.keys, k)
		set.byID[k.id] = k
	}
	slices.SortStableFunc(set.keys, func(a, b *key) int { return b.created.Compare(a.created) })
	for _, k := range set.keys {
		if f := k.alg.family(); k.verifyUntil.IsZero() && set.active[f] == nil {
			set.active[f] = k
		}
	}
	for _, k := range set.active {
		if k == nil {
			continue
		}
		if err := k.makeSigners(); err != nil {
			return nil, fmt.Errorf("keys of realm %q: signer for %q: %w", realm, k.id, err)
		}
	}
	return set, nil
}

// The JWS header types sessiond signs with. The header, not a claim, is what RFC 8725 §3.11
// and RFC 9068 ask verifiers to look at to tell kinds of JWT apart.
const (
	typAccess = "at+jwt"       // access tokens, RFC 9068
	typLogout = "logout+jwt"   // back-channel logout tokens, OpenID Connect Back-Channel Logout 1.0 §2.4
	typSET    = "secevent+jwt" // Security Event Tokens, RFC 8417 §2.3 (set.go)
	// typAction (action.go, "action+jwt") is the type of action tokens, signed with the realm secret.
	// typJWT is the plain type: refresh and offline tokens (HS512, as Keycloak's), adapter
	// actions (which Keycloak adapters read without looking at typ), and, before at+jwt, every
	// token sessiond issued (legacy tokens, see Service.verify).
	typJWT = "JWT"
)

func (k *key) makeSigners() error {
	types := []string{typAccess, typLogout, typSET, typJWT}
	if k.secret != nil {
		types = []string{typJWT, typAction, typSSO}
	}
	k.signers = make(map[string]*compactSigner, len(types))
	for _, typ := range types {
		s, err := newCompactSigner(k, typ)
		if err != nil {
			return err
		}
		k.signers[typ] = s
	}
	return nil
}

// parseKey checks a stored key: its private key parses, fits its algorithm, and has the kid
// its public key gives; a secret has the right size.
func parseKey(sk stored) (*key, error) {
	if sk.Algorithm == HS512 {
		if len(sk.Secret) != secretBytes || sk.ID == "" {
			return nil, fmt.Errorf("HS512 secret has %d bytes, not %d, or no kid", len(sk.Secret), secretBytes)
		}
		return &key{id: sk.ID, alg: sk.Algorithm, created: sk.Created, verifyUntil: sk.VerifyUntil, secret: sk.Secret}, nil
	}
	priv, err := x509.ParsePKCS8PrivateKey(sk.PKCS8)
	if err != nil {
		return nil, fmt.Errorf("private key: %w", err)
	}
	var signer crypto.Signer
	switch p := priv.(type) {
	case *ecdsa.PrivateKey:
		if sk.Algorithm != ES256 || p.Curve != elliptic.P256() {
			return nil, fmt.Errorf("ECDSA %s key does not fit algorithm %q", p.Curve.Params().Name, sk.Algorithm)
		}
		signer = p
	case *rsa.PrivateKey:
		if sk.Algorithm != RS256 || p.N.BitLen() < rsaBits {
			return nil, fmt.Errorf("%d-bit RSA key does not fit algorithm %q", p.N.BitLen(), sk.Algorithm)
		}
		signer = p
	default:
		return nil, fmt.Errorf("unsupported private key type %T", priv)
	}
	kid, err := thumbprint(signer.Public())
	if err != nil {
		return nil, err
	}
	if kid != sk.ID {
		return nil, fmt.Errorf("kid does not match the key (its thumbprint is %q)", kid)
	}
	return &key{id: sk.ID, alg: sk.Algorithm, created: sk.Created, verifyUntil: sk.VerifyUntil, public: signer.Public(), private: signer}, nil
}

// generate makes a new key. Its kid is the RFC 7638 thumbprint of the public key, so the same
// key always has the same kid and two different keys practically never share one; a secret's
// kid is random.
func generate(alg Algorithm, now time.Time) (stored, error) {
	if alg == HS512 {
		s := make([]byte, secretBytes)
		rand.Read(s)
		return stored{ID: rand.Text(), Algorithm: alg, Created: now.UTC(), Secret: s}, nil
	}
	var priv crypto.Signer
	var err error
	switch alg {
	case ES256:
		priv, err = ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	case RS256:
		priv, err = rsa.GenerateKey(rand.Reader, rsaBits)
	default:
		err = fmt.Errorf("algorithm %q is not supported", alg)
	}
	if err != nil {
		return stored{}, err
	}
	der, err := x509.MarshalPKCS8PrivateKey(priv)
	if err != nil {
		return stored{}, err
	}
	kid, err := thumbprint(priv.Public())
	if err != nil {
		return stored{}, err
	}
	return stored{ID: kid, Algorithm: alg, Created: now.UTC(), PKCS8: der}, nil
}

func thumbprint(pub crypto.PublicKey) (string, error) {
	tp, err := (&jose.JSONWebKey{Key: pub}).Thumbprint(crypto.SHA256)
	if err != nil {
		return "", fmt.Errorf("key thumbprint: %w", err)
	}
	return base64.RawURLEncoding.EncodeToString(tp), nil
}
