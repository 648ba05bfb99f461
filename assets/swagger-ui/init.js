// Starts Swagger UI on the service's own OpenAPI document. Kept in a file
// (not inline) so the /docs Content-Security-Policy can forbid inline scripts.
window.addEventListener("load", function () {
  window.ui = SwaggerUIBundle({
    url: "/openapi.json",
    dom_id: "#swagger-ui",
    deepLinking: true,
    persistAuthorization: false,
    // Swagger UI would otherwise send the document to an outside validator
    // service to draw a badge; the reference works offline.
    validatorUrl: null,
  });
});
