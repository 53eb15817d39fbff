// Saves one secret of the setup page into storage/passwords (realm TA-stixbridge) through splunkd,
// and marks the app configured. The value is sent once and never shown again.
require([
    "jquery",
    "splunkjs/mvc",
    "splunkjs/mvc/simplexml/ready!"
], function ($, mvc) {
    "use strict";

    var REALM = "TA-stixbridge";
    var NAME_PATTERN = /^[A-Z_][A-Z0-9_]*$/;
    var service = mvc.createService({ owner: "nobody", app: "TA-stixbridge" });
    var message = $("#stixbridge-credential-message");

    function show(text) {
        message.text(text);
    }

    function markConfigured() {
        service.post("/services/apps/local/TA-stixbridge", { configured: "true" }, function () {});
    }

    function create(name, value) {
        service.post("storage/passwords", { name: name, password: value, realm: REALM }, function (err) {
            if (err) {
                show("Saving " + name + " failed: " + (err.status || "") + " " + (err.error || ""));
                return;
            }
            show("Saved " + name + ".");
            $("#stixbridge-credential-value").val("");
            markConfigured();
        });
    }

    $("#stixbridge-credential-save").on("click", function () {
        var name = $.trim($("#stixbridge-credential-name").val());
        var value = $("#stixbridge-credential-value").val();
        if (!NAME_PATTERN.test(name)) {
            show("The name must be upper case letters, digits and _, such as STIXBRIDGE_TAXII_PASSWORD.");
            return;
        }
        if (!value) {
            show("Enter the value of " + name + ".");
            return;
        }
        // A stored credential is replaced by deleting it first; storage/passwords refuses duplicates.
        var entity = "storage/passwords/" + encodeURIComponent(REALM + ":" + name + ":");
        service.del(entity, {}, function () {
            create(name, value);
        });
    });
});
