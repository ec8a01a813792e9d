"""A realistic, long petition in Khmer and English, written with the Markdown subset.

Used to hold the page budget (16 KB with the stylesheet) against the texts organisers really
write, and by the browser tests for the screenshots.
"""

LONG_TEXTS = {
    "km": {
        "title": "សូមដោះលែងអ្នកការពារសិទ្ធិដីធ្លីដែលកំពុងជាប់ឃុំ",
        "target": "ក្រសួងយុត្តិធម៌នៃព្រះរាជាណាចក្រកម្ពុជា",
        "summary": (
            "មនុស្សដប់មួយនាក់ដែលបានការពារផ្ទះសម្បែងរបស់ខ្លួនពីការបណ្ដេញចេញដោយបង្ខំ "
            "ត្រូវបានឃុំខ្លួនអស់រយៈពេលប្រាំមួយខែហើយ ដោយគ្មានការជំនុំជម្រះ។ "
            "យើងសូមឲ្យដោះលែងពួកគេ និងឲ្យមានការជំនុំជម្រះដោយយុត្តិធម៌។"
        ),
        "body": """## តើមានអ្វីកើតឡើង

កាលពីខែមីនា គ្រួសារនានានៅក្នុងភូមិរបស់យើងបានស្នើសុំឲ្យអាជ្ញាធរខេត្តបញ្ឈប់ការរុះរើផ្ទះរបស់ពួកគេ។ \
នៅសប្ដាហ៍បន្ទាប់ មនុស្សដប់មួយនាក់ក្នុងចំណោមពួកគេ ដែលមានកសិករ គ្រូបង្រៀនម្នាក់ \
និងម្ដាយវ័យក្មេងពីរនាក់ ត្រូវបានចាប់ខ្លួន។ ពួកគេត្រូវបានចោទប្រកាន់ពីបទ *ញុះញង់* \
ហើយត្រូវបានឃុំខ្លួនអស់រយៈពេលប្រាំមួយខែ ដោយគ្មានការជំនុំជម្រះ។

ក្រុមគ្រួសាររបស់ពួកគេអាចទៅសួរសុខទុក្ខបានតែម្ដងក្នុងមួយខែប៉ុណ្ណោះ។ \
ពីរនាក់ក្នុងចំណោមពួកគេកំពុងឈឺ ហើយមិនទាន់បានជួបគ្រូពេទ្យនៅឡើយទេ។

## អ្វីដែលយើងស្នើសុំ

យើងខ្ញុំជាអ្នកចុះហត្ថលេខាខាងក្រោមនេះ សូមស្នើដល់ក្រសួងយុត្តិធម៌ឲ្យ៖

1. **ដោះលែង**អ្នកការពារសិទ្ធិទាំងដប់មួយនាក់ ក្នុងពេលកំពុងពិនិត្យសំណុំរឿងរបស់ពួកគេ
2. អនុញ្ញាតឲ្យពួកគេជួបគ្រូពេទ្យ និងមេធាវីដែលពួកគេជ្រើសរើសដោយខ្លួនឯង
3. រៀបចំសវនាការដោយយុត្តិធម៌ និងជាសាធារណៈ ក្នុងរយៈពេលសមរម្យ
4. បញ្ឈប់ការបណ្ដេញចេញ រហូតដល់ការវាស់វែងដីដោយឯករាជ្យត្រូវបានបញ្ចប់

## ហេតុអ្វីបានជាហត្ថលេខារបស់អ្នកសំខាន់

ហត្ថលេខានីមួយៗត្រូវបានរាប់តែម្ដង ហើយមិនអាចលុបចោលបានឡើយ។ នៅពេលញត្តិនេះបិទ \
សម្ព័ន្ធនឹងបញ្ជូនចំនួនហត្ថលេខាទៅក្រសួង ជាមួយឯកសារមួយដែលអ្នកណាក៏អាចពិនិត្យបាន \
ដោយមិនបង្ហាញថានរណាជាអ្នកចុះហត្ថលេខាឡើយ។

រដ្ឋធម្មនុញ្ញនៃព្រះរាជាណាចក្រកម្ពុជាការពារមនុស្សគ្រប់គ្នាពីការចាប់ខ្លួនដែលមិនស្របតាមច្បាប់ \
និងការពារសិទ្ធិកាន់កាប់ទ្រព្យសម្បត្តិ (មាត្រា ៣៨ និង ៤៤)។ \
កម្ពុជាក៏បានផ្ដល់សច្ចាប័នលើកតិកាសញ្ញាអន្តរជាតិស្ដីពីសិទ្ធិពលរដ្ឋ និងសិទ្ធិនយោបាយផងដែរ។ \
យើងគ្រាន់តែសុំឲ្យការសន្យាទាំងនេះត្រូវបានគោរព។

អានបន្ថែមអំពីសំណុំរឿងនេះនៅក្នុង[របាយការណ៍របស់សម្ព័ន្ធ](https://example.org/report)។
""",
    },
    "en": {
        "title": "Release the detained land rights defenders",
        "target": "Ministry of Justice of the Kingdom of Cambodia",
        "summary": (
            "Eleven people who defended their homes against forced eviction have been held "
            "without trial for six months. We ask for their release and a fair hearing."
        ),
        "body": """## What happened

In March, families in our village asked the provincial authorities to stop the demolition of \
their homes. The following week eleven of them, farmers, a teacher and two young mothers, were \
arrested. They are charged with *incitement* and have been held for six months without trial.

Their families may visit them only once a month. Two of them are ill and have not seen a \
doctor.

## What we ask

We, the undersigned, ask the Ministry of Justice to:

1. **release** the eleven defenders while their case is examined;
2. give them access to a doctor and to lawyers of their choice;
3. hold a fair and public hearing within a reasonable time;
4. stop the eviction until an independent survey of the land is complete.

## Why your signature matters

Every signature is counted once and cannot be removed. When the petition closes, the \
coalition will deliver the count to the Ministry with a document that anyone can check, \
without revealing who signed.

The Constitution of Cambodia protects everyone from arrest outside the law and protects the \
right to own property (articles 38 and 44). Cambodia has also ratified the International \
Covenant on Civil and Political Rights. We ask only that these promises be kept.

Read more about the case in the [coalition's report](https://example.org/report).
""",
    },
}
