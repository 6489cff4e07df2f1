from whitenoise.storage import CompressedManifestStaticFilesStorage


class StaticStorage(CompressedManifestStaticFilesStorage):
    """Hashed, compressed static files, with ES module imports rewritten to the hashed names.

    Without the rewrite, ``chat.<hash>.js`` would import the unhashed ``./api.js`` and the browser
    would load every module twice.
    """

    support_js_module_import_aggregation = True
