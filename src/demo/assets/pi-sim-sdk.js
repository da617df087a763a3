// A stand-in for Pi's JS SDK (window.Pi) on pi-payments' /demo page, backed by the built-in
// simulator through /demo/sim/*. It implements what the demo store uses, with the SDK's names,
// arguments and callback order: Pi.init, Pi.authenticate(scopes, onIncompletePaymentFound),
// Pi.createPayment(paymentData, callbacks), Pi.nativeFeaturesList and Pi.Ads. What the Pi
// Browser and the Pioneer's wallet do (the payment dialog, the signature) is simulated and
// announced as "pi-sim" events on window, which the demo page writes to its log.
(() => {
  "use strict";

  const SIM = "/demo/sim";
  const POLL_MS = 400;
  // Pi cancels a payment the app has not approved within about a minute, and its SDK calls
  // onReadyForServerApproval / onReadyForServerCompletion again about every 10 s until then.
  const APPROVAL_WINDOW_MS = 60_000;
  const COMPLETION_WINDOW_MS = 60_000;
  const CALL_AGAIN_MS = 10_000;

  let initialized = false;
  let accessToken = null;
  let grantedScopes = [];

  const sleep = (ms) => new Promise((resolve) => setTimeout(resolve, ms));
  const announce = (step, text, data = {}) =>
    window.dispatchEvent(new CustomEvent("pi-sim", { detail: { step, text, data } }));

  async function sim(method, path, body) {
    const headers = { "content-type": "application/json" };
    if (accessToken) headers.authorization = `Bearer ${accessToken}`;
    const res = await fetch(SIM + path, {
      method, headers, body: body === undefined ? undefined : JSON.stringify(body),
    });
    const json = await res.json().catch(() => ({}));
    if (!res.ok) throw new Error(json.error_message ?? json.message ?? `${method} ${SIM}${path}: ${res.status}`);
    return json;
  }

  function requireInit(call) {
    if (!initialized) throw new Error(`Pi.${call}: call Pi.init({version: "2.0"}) first`);
  }

  // The simulated Pioneer of this browser: kept across reloads (so an incomplete payment is
  // found again), or named by ?pioneer=… in the page's URL.
  function pioneerUid() {
    const named = new URLSearchParams(location.search).get("pioneer");
    if (named) return named;
    let uid = localStorage.getItem("pi-sim-pioneer");
    if (!uid) {
      uid = `pioneer-${Math.random().toString(36).slice(2, 8)}`;
      localStorage.setItem("pi-sim-pioneer", uid);
    }
    return uid;
  }

  function init(config = {}) {
    initialized = true;
    announce("pi-init", `Pi.init: SDK ${config.version ?? "2.0"} (simulated${config.sandbox ? ", sandbox" : ""})`);
  }

  async function authenticate(scopes, onIncompletePaymentFound) {
    requireInit("authenticate");
    const uid = pioneerUid();
    const auth = await sim("POST", "/authenticate", { uid, username: uid, scopes });
    accessToken = auth.access_token;
    grantedScopes = scopes;
    const who = document.getElementById("pi-sim-pioneer");
    if (who) who.textContent = `Simulated Pioneer: ${uid} (a funded testnet wallet in the simulator)`;
    announce("pi-authenticated", `Pi Browser: ${uid} shares ${scopes.join(", ")} with the app`);
    // Like Pi's SDK: a payment the Pioneer left unfinished is handed to the app at sign-in.
    const { payment } = await sim("GET", "/incomplete");
    if (payment && typeof onIncompletePaymentFound === "function") {
      Promise.resolve().then(() => onIncompletePaymentFound(payment)).catch(console.error);
    }
    const user = { uid: auth.uid };
    if (scopes.includes("username")) user.username = auth.username;
    return { accessToken, user };
  }

  function createPayment(paymentData, callbacks) {
    requireInit("createPayment");
    for (const name of ["onReadyForServerApproval", "onReadyForServerCompletion", "onCancel", "onError"]) {
      if (typeof callbacks?.[name] !== "function") throw new Error(`Pi.createPayment: callbacks.${name} is missing`);
    }
    const flow = { payment: null };
    runPayment(paymentData, callbacks, flow).catch((error) => callbacks.onError(error, flow.payment ?? undefined));
  }

  // Call the app's callback now and again every CALL_AGAIN_MS, polling Pi's view of the payment
  // until `done`, a cancellation, or `windowMs`. Returns the last DTO, or null on timeout.
  async function waitWhileCalling(id, callback, done, windowMs) {
    const deadline = Date.now() + windowMs;
    let calledAt = -Infinity;
    for (;;) {
      if (Date.now() - calledAt >= CALL_AGAIN_MS) {
        calledAt = Date.now();
        Promise.resolve().then(callback).catch(console.error); // the app's own business
      }
      const payment = await sim("GET", `/payments/${id}`);
      if (done(payment) || payment.status.cancelled || payment.status.user_cancelled) return payment;
      if (Date.now() > deadline) return null;
      await sleep(POLL_MS);
    }
  }

  async function runPayment(paymentData, callbacks, flow) {
    if (!accessToken || !grantedScopes.includes("payments")) {
      throw new Error('Pi.createPayment: call Pi.authenticate with the "payments" scope first');
    }
    flow.payment = await sim("POST", "/payments", paymentData);
    const id = flow.payment.identifier;
    announce("pi-payment-created", `Pi Browser: payment ${id} of ${flow.payment.amount} Pi created; the Pioneer sees the payment dialog`, { paymentId: id });

    const approved = await waitWhileCalling(id, () => callbacks.onReadyForServerApproval(id),
      (p) => p.status.developer_approved, APPROVAL_WINDOW_MS);
    if (!approved) {
      await sim("POST", `/payments/${id}/user_cancel`);
      announce("pi-timeout", `Pi: payment ${id} was not approved in time and is cancelled`, { paymentId: id });
      return callbacks.onCancel(id);
    }
    if (approved.status.cancelled || approved.status.user_cancelled) return callbacks.onCancel(id);
    announce("pi-approved", `Pi: the app approved payment ${id} (developer_approved)`, { paymentId: id });

    const { txid } = await sim("POST", `/payments/${id}/submit`);
    announce("signed", `Pioneer signed and submitted the transaction (simulated wallet): txid ${txid}`, { paymentId: id, txid });
    if (document.getElementById("pi-sim-close-after-signing")?.checked) {
      announce("interrupted", "the app was closed before onReadyForServerCompletion: the payment stays incomplete; reload the page", { paymentId: id });
      return;
    }

    const completed = await waitWhileCalling(id, () => callbacks.onReadyForServerCompletion(id, txid),
      (p) => p.status.developer_completed, COMPLETION_WINDOW_MS);
    if (completed?.status.developer_completed) {
      announce("pi-completed", `Pi: the app completed payment ${id}; the dialog closes`, { paymentId: id });
    }
  }

  // A rewarded ad "plays" for a moment, then Pi's ad network reports it watched (granted).
  async function playAd(type) {
    const screen = document.createElement("div");
    screen.className = "ad";
    screen.textContent = `Simulated ${type} ad…`;
    document.body.append(screen);
    await sleep(1000);
    screen.remove();
  }

  const Ads = {
    async isAdReady(type) {
      return { type, ready: true };
    },
    async requestAd(type) {
      return { type, result: "AD_LOADED" };
    },
    async showAd(type) {
      requireInit("Ads.showAd");
      if (type === "rewarded" && !accessToken) return { type, result: "USER_UNAUTHENTICATED" };
      await playAd(type);
      if (type !== "rewarded") return { type, result: "AD_CLOSED" };
      const ad = await sim("POST", "/ads");
      announce("pi-ad", `Pi ad network: rewarded ad ${ad.identifier} watched to the end`, { adId: ad.identifier });
      return { type, result: "AD_REWARDED", adId: ad.identifier };
    },
  };

  window.Pi = {
    init,
    authenticate,
    createPayment,
    nativeFeaturesList: async () => ["inline_media", "ad_network"],
    Ads,
  };
})();
