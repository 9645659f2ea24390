cd /tmp/pncbi && source /work/main/.venv/bin/activate
python -m weasel run cllmfs proj --vars.dataset ncbi --vars.train_file ../shared/data/ncbi-disease/train.tsv --vars.test_file ../shared/data/ncbi-disease/test.tsv --vars.dev_file ../shared/data/ncbi-disease/devel.tsv --vars.n_train 500 --vars.n_test 200 --vars.n_dev 100 --vars.dtype int8
echo EXIT $? $(date)
