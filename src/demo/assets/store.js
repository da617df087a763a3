// The demo store's frontend: the code an app developer writes. It talks to Pi only through
// Pi's SDK (window.Pi) and to the backend only through pi-payments' routes, so it works the
// same with the real SDK in the Pi Browser. Each step is written to the page's log.
"use strict";

const API = ""; // pi-payments serves this page: its routes are on this origin.
const POLL_MS = 500;
const WAIT_MS = 60_000;

// Demo only: what the simulated Pi Browser and wallet do, in the same log.
window.addEventListener("pi-sim", (e) => log(e.detail.step, e.detail.text, e.detail.data, "pi-sim"));

let session = null; // Pi.authenticate's answer: {accessToken, user: {uid, username}}
const signedIn = signIn();

// --- talking to pi-payments -----------------------------------------------------------------

async function api(method, path, body) {
  const headers = { "content-type": "application/json" };
  if (session) headers.authorization = `Bearer ${session.accessToken}`;
  const res = await fetch(API + path, {
    method, headers, body: body === undefined ? undefined : JSON.stringify(body),
  });
  const json = await res.json().catch(() => ({}));
  if (!res.ok) throw new Error(`${method} ${path}: ${res.status} ${json.error ?? ""} ${json.message ?? ""}`);
  return { status: res.status, json };
}

const sleep = (ms) => new Promise((resolve) => setTimeout(resolve, ms));

// Poll `read` until `done(value)` or a minute has passed.
async function until(read, done) {
  const deadline = Date.now() + WAIT_MS;
  for (;;) {
    const value = await read();
    if (done(value) || Date.now() > deadline) return value;
    await sleep(POLL_MS);
  }
}

// --- sign-in ---------------------------------------------------------------------------------

async function signIn() {
  Pi.init({ version: "2.0", sandbox: true });
  session = await Pi.authenticate(["username", "payments"], onIncompletePaymentFound);
  const { json: me } = await api("POST", "/auth/pi", { accessToken: session.accessToken });
  log("authenticated", `authenticated as @${me.username}: Pi.authenticate → POST /auth/pi`);
  return session;
}

// Pi found a payment of this Pioneer that never finished (the app was closed mid-way): hand it
// to the backend, which completes it (transaction linked) or cancels it (none).
async function onIncompletePaymentFound(payment) {
  await signedIn;
  const paymentId = payment.identifier;
  const transactionId = payment.transaction ? payment.transaction.txid : null;
  log("incomplete-found", `onIncompletePaymentFound: payment ${paymentId}, transaction ${transactionId}`, { paymentId });
  const { status } = await api("POST", "/pi_payment/incomplete", { paymentId, transactionId });
  log("incomplete", `→ POST /pi_payment/incomplete: ${status}`, { paymentId });
  await deliver(paymentId, payment.metadata.orderId);
}

// --- buying ------------------------------------------------------------------------------------

async function buy(productId) {
  await signedIn;
  // The server sets the price: the order's amount, memo and metadata go to Pi as they are.
  const { json: order } = await api("POST", "/orders", { productId });
  log("order", `order ${order.id} created: ${order.amount} Pi for "${order.memo}"`, { orderId: order.id });
  Pi.createPayment(
    { amount: Number(order.amount), memo: order.memo, metadata: order.metadata },
    paymentCallbacks(order),
  );
}

// The SDK's callbacks, each forwarded to pi-payments (pi-platform.md §2). The backend answers
// 202 at once; its workers approve and complete at Pi.
function paymentCallbacks(order) {
  const report = (promise) => promise.catch((error) => log("error", error.message));
  return {
    onReadyForServerApproval: (paymentId) => report((async () => {
      const { status } = await api("POST", "/pi_payment/approve", { paymentId, accessToken: session.accessToken });
      log("approve", `onReadyForServerApproval → POST /pi_payment/approve: ${status}`, { paymentId });
    })()),
    onReadyForServerCompletion: (paymentId, txid) => report((async () => {
      const { status } = await api("POST", "/pi_payment/complete", { paymentId, txid });
      log("complete", `onReadyForServerCompletion → POST /pi_payment/complete: ${status}`, { paymentId });
      await deliver(paymentId, order.id);
    })()),
    onCancel: (paymentId) => report((async () => {
      await api("POST", "/pi_payment/cancel", { paymentId });
      log("cancelled", `onCancel → POST /pi_payment/cancel: payment ${paymentId} cancelled`, { paymentId });
    })()),
    onError: (error, payment) => report((async () => {
      log("error", `onError: ${error.message}`);
      if (payment) await api("POST", "/pi_payment/error", { paymentId: payment.identifier, error: error.message });
    })()),
  };
}

// Deliver once the backend says the order is paid (in a real app: from the webhook).
async function deliver(paymentId, orderId) {
  const payment = await until(
    async () => (await api("GET", `/payments/${paymentId}`)).json.payment,
    (p) => ["completed", "cancelled", "needs_attention"].includes(p.state),
  );
  if (payment.state !== "completed") return log("error", `payment ${paymentId} is ${payment.state}`);
  log("completed", `payment ${paymentId} completed (verified on chain, completed at Pi)`, { paymentId });
  const order = await until(async () => (await api("GET", `/orders/${orderId}`)).json, (o) => o.state === "paid");
  if (order.state !== "paid") return log("error", `order ${orderId} is ${order.state}`);
  log("delivered", `delivered: order ${orderId} is paid`, { orderId, paymentId });
}

// --- rewarded ad -------------------------------------------------------------------------------

async function watchAd() {
  await signedIn;
  const { ready } = await Pi.Ads.isAdReady("rewarded");
  if (!ready) await Pi.Ads.requestAd("rewarded");
  const ad = await Pi.Ads.showAd("rewarded");
  if (ad.result !== "AD_REWARDED") return log("ad", `the ad ended without a reward: ${ad.result}`);
  log("ad-watched", `ad watched: AD_REWARDED, adId ${ad.adId}`, { adId: ad.adId });
  const claim = await until(async () => {
    const { status, json } = await api("POST", "/ads/claim", { adId: ad.adId });
    log("claim", `POST /ads/claim: ${status} ${json.status}`, { adId: ad.adId });
    return json;
  }, (c) => c.status !== "pending");
  if (claim.status !== "granted") return log("error", `no reward: the claim is ${claim.status}`);
  const coins = document.getElementById("coins");
  coins.textContent = String(Number(coins.textContent) + 10);
  log("rewarded", `rewarded: +10 coins for ad ${ad.adId}`, { adId: ad.adId });
}

// --- the page ----------------------------------------------------------------------------------

function log(step, text, data = {}, source = "app") {
  const item = document.createElement("li");
  item.dataset.step = step;
  item.dataset.source = source;
  for (const [key, value] of Object.entries(data)) item.dataset[key] = value;
  item.textContent = `${new Date().toLocaleTimeString()}  ${text}`;
  document.getElementById("log").append(item);
}

async function showProducts() {
  const { json } = await api("GET", "/demo/products");
  const list = document.getElementById("products");
  for (const product of json.products) {
    const item = document.createElement("li");
    const button = document.createElement("button");
    button.type = "button";
    button.dataset.product = product.id;
    button.textContent = `Buy for ${product.price} Pi`;
    button.addEventListener("click", () => buy(product.id).catch((error) => log("error", error.message)));
    item.append(product.name, button);
    list.append(item);
  }
}

document.addEventListener("DOMContentLoaded", () => {
  showProducts().catch((error) => log("error", error.message));
  const adButton = document.getElementById("watch-ad");
  adButton.addEventListener("click", () => watchAd().catch((error) => log("error", error.message)));
  signedIn.then(() => { adButton.disabled = false; }, (error) => log("error", `sign-in failed: ${error.message}`));
});
