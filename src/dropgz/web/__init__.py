"""The App Engine app: the monitoring tier (:mod:`.webhook`) and the delta tier
(:mod:`.tasks`, its HTTP side; :mod:`.delta`, its logic), built by :func:`.app.create_app`."""
