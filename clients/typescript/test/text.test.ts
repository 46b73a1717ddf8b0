/**
 * A URL's user and password are cut as the ledger cuts them (`ledger.rules.without_userinfo`
 * and `without_passwords`), from the URL a browser reads (rev30).
 */
import assert from "node:assert/strict";
import { it } from "node:test";
import { carriesPassword, withoutNestedPasswords, withoutPasswords, withoutUserinfo } from "../src/text.js";

it("cuts the userinfo of the URL a browser reads: no tab or line break, no control at an end", () => {
  assert.equal(withoutUserinfo("http:/\n/alice:s3cret@shop.example/a"), "http://shop.example/a");
  assert.equal(withoutUserinfo("ht\ttps://ali\rce:s3cret@shop.example/a"), "https://shop.example/a");
  assert.equal(withoutUserinfo("\x01 https://alice:s3cret@shop.example/a\x1f "), "https://shop.example/a");
  assert.equal(withoutUserinfo("https://shop.example/a\tb "), "https://shop.example/a\tb ");
});

it("cuts a password holding an '@' whole from a text", () => {
  const said = "net::ERR_FAILED at https://alice:Tr0ub4dor@3xyz@shop.example/login, retrying";
  assert.equal(withoutPasswords(said), "net::ERR_FAILED at https://shop.example/login, retrying");
});

it("cuts a URL's user without a password from a text, as the ledger's rule does", () => {
  const said = "net::ERR_UNSAFE_PORT at http://ghp_SECRET@127.0.0.1:1/x";
  assert.equal(withoutPasswords(said), "net::ERR_UNSAFE_PORT at http://127.0.0.1:1/x");
  assert.equal(withoutPasswords("at HTTPS:tok@git.example/r"), "at HTTPS:git.example/r");
  assert.equal(withoutPasswords("write to mailto:joe@example.com"), "write to mailto:joe@example.com");
  assert.equal(withoutPasswords("see foo:/alice@host"), "see foo:/alice@host");
});

it("cuts a nested URL's password, as written or percent-encoded, and keeps a fragment's token", () => {
  const page = "https://shop.example/login?next=http://bob:hunter2@intranet.example/#access_token=T";
  assert.equal(withoutNestedPasswords(page), "https://shop.example/login?next=http://intranet.example/#access_token=T");
  const encoded = "https://shop.example/login?next=http%3A%2F%2Fbob%3Ahunter2%40intranet%2F";
  assert.equal(withoutNestedPasswords(encoded), "https://shop.example/login?next=http%3A%2F%2Fintranet%2F");
  assert.equal(withoutNestedPasswords("file:///notes:v2@home.html"), "file:///notes:v2@home.html");
  assert.ok(carriesPassword(page) && carriesPassword(encoded));
  assert.ok(!carriesPassword("https://shop.example/x?at=12h:30:00@utc#access_token=T"));
});

it("reads no end of a nested URL's slashes at a tab or line break a browser drops (rev48)", () => {
  const page = "https://shop.example/login?next=http:%2F%09%2Fbob%3Ahunter2@intranet/";
  assert.ok(carriesPassword(page));
  assert.equal(withoutNestedPasswords(page), "https://shop.example/login?next=http:intranet/");
  const encoded = "https://shop.example/login?next=http%3A%2F%0A%2Fbob%3Ahunter2%40intranet%2F";
  assert.ok(carriesPassword(encoded));
  assert.equal(withoutNestedPasswords(encoded), "https://shop.example/login?next=http%3A%2F%0A%2Fintranet%2F");
  for (const next of ["http:%2F%0D%2F", "http:%2F%09%09%2F", "http:%09//", "http:%2F%2509%2F", "//%09"]) {
    assert.ok(carriesPassword(`https://shop.example/login?next=${next}bob%253Ahunter2@intranet/`), next);
  }
  const said = "net::ERR_FAILED at http:/\t/bob:hunter2@intranet/a and ws:\n//TOKEN@intranet/";
  assert.equal(withoutPasswords(said), "net::ERR_FAILED at http:/\t/intranet/a and ws:\n//intranet/");
  const signIn = "https://idp.example/auth?redirect_uri=http%3A%2F%09%2Flocalhost%3A8080&login_hint=b%40c.com";
  assert.ok(!carriesPassword(signIn));
  assert.equal(withoutNestedPasswords(signIn), signIn);
});

it("reads an escaped tab or line break as nothing, wherever it is, as a browser drops it (rev48)", () => {
  const nexts = [
    "http%09://bob:pw@intranet/",
    "http%3A%2F%2Fbob%3Ap%09w%40intranet",
    "%2F%2Fbob%3Ap%0Aw%40intranet",
    "%2F%2F%09%2Fbob%3Apw%40intranet",
    "ht%09tp:bob:pw@intranet/",
  ];
  for (const next of nexts) {
    const page = `https://shop.example/login?next=${next}`;
    assert.ok(carriesPassword(page), next);
    assert.ok(!carriesPassword(withoutNestedPasswords(page)), next);
    assert.ok(!withoutNestedPasswords(page).includes("pw") && !withoutNestedPasswords(page).includes("p%09w"), next);
  }
  const page = "https://shop.example/login?next=http%09://bob:pw@intranet/a&r=%2F%2F%09%2Fb%3Ap%40i";
  assert.equal(withoutNestedPasswords(page), "https://shop.example/login?next=http%09://intranet/a&r=%2F%2F%09%2Fi");
  const inside = "https://shop.example/?n=http%3A%2F%2Fbob%3Ap%09w%40intranet&m=ht%0Atp:b:p@i/";
  assert.equal(withoutNestedPasswords(inside), "https://shop.example/?n=http%3A%2F%2Fintranet&m=ht%0Atp:i/");
});
