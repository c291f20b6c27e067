// The console's few behaviours: copy buttons, "tick all", confirmations, loading FreshChat topics and groups.
(function () {
  "use strict";
  var csrf = document.querySelector('meta[name="csrf-token"]').content;

  document.addEventListener("click", function (event) {
    var copy = event.target.closest("[data-copy]");
    if (copy) {
      var input = document.getElementById(copy.dataset.copy);
      var done = function () { copy.textContent = copy.dataset.done; };
      if (navigator.clipboard && window.isSecureContext) {
        navigator.clipboard.writeText(input.value).then(done);
      } else { // plain http (a local test): the old way still works
        input.select();
        document.execCommand("copy");
        done();
      }
    }
    var ask = event.target.closest("[data-confirm]");
    if (ask && !window.confirm(ask.dataset.confirm)) event.preventDefault();
  });

  var all = document.getElementById("tick-all");
  if (all) {
    all.addEventListener("change", function () {
      document.querySelectorAll('input[name="' + all.dataset.ticks + '"]').forEach(function (box) {
        box.checked = all.checked;
      });
    });
  }

  // "Load topics" and "Load groups": the account's list, from the key typed in the form or the
  // saved connection's own (the server uses it with the stored URL only); picking fills the field.
  function picker(button, listId, fieldId, errorId, listed) {
    var load = document.getElementById(button);
    if (!load) return;
    var list = document.getElementById(listId);
    var field = document.getElementById(fieldId);
    var problem = document.getElementById(errorId);
    load.addEventListener("click", function () {
      var body = {
        api_url: document.getElementById("f-freshchat-api_url").value,
        api_key: document.getElementById("f-freshchat-api_key").value,
        connection_id: load.dataset.connection
      };
      fetch(load.dataset.url, {
        method: "POST",
        headers: {"Content-Type": "application/json", "X-CSRFToken": csrf},
        body: JSON.stringify(body),
        credentials: "same-origin"
      }).then(function (resp) { return resp.json(); }).then(function (answer) {
        problem.hidden = !answer.error;
        problem.textContent = answer.error || "";
        if (answer.error) return;
        list.innerHTML = "";
        if (load.dataset.none !== undefined) list.add(new Option(load.dataset.none, "", false, !field.value));
        (answer[listed] || []).forEach(function (found) {
          list.add(new Option(found.name + " (" + found.id + ")", found.id, false, found.id === field.value));
        });
        list.hidden = false;
        if (!field.value && list.value) field.value = list.value;
      });
    });
    list.addEventListener("change", function () { field.value = list.value; });
  }
  picker("load-topics", "topics", "f-freshchat-channel_id", "topics-error", "topics");
  picker("load-groups", "groups", "f-options-freshchat_group_id", "groups-error", "groups");
})();
