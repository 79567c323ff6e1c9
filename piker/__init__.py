"""piker: trading gear for hackers.

An actor-based order execution management system (`piker.clearing`), quote
feeds (`piker.data`) and broker backends (`piker.brokers`) on a supervised
`tractor` service tree (`piker.service`), plus a Qt chart (`piker.ui`).
"""
import os
import warnings

# tractor 0.1.0a5 imports `trio.MultiError`, deprecated since trio 0.22:
# silence it here (before anything imports tractor) and in every sub-actor,
# which inherits the environment (TRACTOR.md rule 12).
_WARNINGS = (
    'ignore:trio.MultiError is deprecated:FutureWarning,'
    'ignore:MultiError.filter() is deprecated:FutureWarning'
)
if _WARNINGS not in os.environ.get('PYTHONWARNINGS', ''):
    os.environ['PYTHONWARNINGS'] = ','.join(
        w for w in (os.environ.get('PYTHONWARNINGS'), _WARNINGS) if w
    )
warnings.filterwarnings('ignore', message=r'trio\.MultiError is deprecated')
warnings.filterwarnings('ignore', message=r'MultiError\.filter\(\) is deprecated')
warnings.filterwarnings('ignore', message=r'MultiError\.catch\(\) is deprecated')
