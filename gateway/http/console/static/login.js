// Sign-in: the key goes to the gateway as JSON (a request another origin cannot make
// without the gateway's consent); the answer sets the HttpOnly session cookie.
"use strict";

document.addEventListener("DOMContentLoaded", () => {
  const form = document.getElementById("login-form");
  const error = document.getElementById("login-error");
  form.addEventListener("submit", async (event) => {
    event.preventDefault();
    error.textContent = "";
    const key = document.getElementById("api_key").value.trim();
    const response = await fetch("/console/login", {
      method: "POST",
      credentials: "same-origin",
      headers: { "Content-Type": "application/json" },
      body: JSON.stringify({ api_key: key }),
    });
    if (response.ok) {
      window.location.assign("/console");
      return;
    }
    const body = await response.json().catch(() => ({}));
    error.textContent = (body.error && (body.error.detail || body.error.message)) || "Sign-in failed.";
  });
});
