// The console's few behaviours: copy buttons, "tick all", confirmations, loading FreshChat topics.
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

  var load = document.getElementById("load-topics");
  if (load) {
    var picker = document.getElementById("topics");
    var field = document.getElementById("f-freshchat-channel_id");
    var problem = document.getElementById("topics-error");
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
        picker.innerHTML = "";
        (answer.topics || []).forEach(function (topic) {
          var option = new Option(topic.name + " (" + topic.id + ")", topic.id, false, topic.id === field.value);
          picker.add(option);
        });
        picker.hidden = false;
        if (!field.value && picker.value) field.value = picker.value;
      });
    });
    picker.addEventListener("change", function () { field.value = picker.value; });
  }
})();
